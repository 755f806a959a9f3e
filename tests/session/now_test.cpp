// Tests of the Session's "now never decreases" precondition (STYLE.md §1
// "One clock"): every input taking `now` aborts through SYMWIRE_REQUIRE when
// handed a time earlier than the previous input's. Catch2 has no death
// tests, so each case runs the input in a forked child and expects SIGABRT.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <functional>
#include <memory>
#include <string>

#include "symwire/session/session.hpp"
#include "tests/support/session_pair.hpp"

namespace symwire {
namespace {

absl::Time T0() { return absl::FromUnixSeconds(1'700'000'000); }

// Runs `input` on a connected initiator whose last input was at T0() in a
// forked child; returns the child's wait status.
int RunInChild(const std::function<void(Session&)>& input) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Keep the expected "REQUIRE failed" line out of the test log.
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDERR_FILENO);
    auto s = Session::Create(testing::InitiatorConfig(), T0());
    if (!s.ok() || !(*s)->TransportConnected(T0()).ok()) _exit(2);
    input(**s);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return status;
}

bool Aborted(int status) {
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

const absl::Time kEarlier = T0() - absl::Microseconds(1);

TEST_CASE("now: an earlier time on any input aborts (caller bug)") {
  CHECK(Aborted(RunInChild([](Session& s) { s.HandleTimeout(kEarlier); })));
  CHECK(Aborted(RunInChild(
      [](Session& s) { static_cast<void>(s.Receive({}, kEarlier)); })));
  CHECK(Aborted(
      RunInChild([](Session& s) { static_cast<void>(s.Close(kEarlier)); })));
  CHECK(Aborted(RunInChild([](Session& s) {
    s.TransportLost(absl::UnavailableError("gone"), kEarlier);
  })));
  CHECK(Aborted(RunInChild(
      [](Session& s) { s.Abort(absl::CancelledError("stop"), kEarlier); })));
  CHECK(Aborted(RunInChild([](Session& s) {
    static_cast<void>(s.SubmitTask({}, TaskOptions{}, kEarlier));
  })));
}

TEST_CASE("now: the same or a later time is accepted") {
  const int status = RunInChild([](Session& s) {
    s.HandleTimeout(T0());
    static_cast<void>(s.Receive({}, T0()));
    s.HandleTimeout(T0() + absl::Seconds(1));
    static_cast<void>(s.Close(T0() + absl::Seconds(1)));
  });
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace symwire
