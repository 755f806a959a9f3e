// File: symwire/testing/nats_server.hpp
// Test utility (public so that tools/ may use it; namespace symwire::testing;
// installed with the testing component): a real nats-server with JetStream on
// 127.0.0.1, started for a test or symwire-soak and stopped by pid. Nothing is
// mocked. The store lives in a fresh temporary directory, removed at the end;
// JetStream's memory and file stores are capped (it claims 75% of RAM and disk
// otherwise).
#ifndef SYMWIRE_TESTING_NATS_SERVER_HPP_
#define SYMWIRE_TESTING_NATS_SERVER_HPP_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace symwire::testing {

// NatsServerOptions
struct NatsServerOptions {
  std::string executable = "nats-server";  // looked up on PATH
  int64_t max_memory_store_bytes = int64_t{64} << 20;
  int64_t max_file_store_bytes = int64_t{256} << 20;
  // Bound on start-up (until a client can connect and JetStream answers).
  std::chrono::milliseconds start_timeout{10000};
  // Bound on a graceful stop before SIGKILL.
  std::chrono::milliseconds stop_timeout{5000};
};

// NatsServer
// Owns one nats-server process. Start() picks a free port; Restart() stops
// the process and starts it again on the same port and store (a broker
// restart: file-stored messages survive). The destructor stops the process
// (SIGTERM, then SIGKILL after stop_timeout) and removes the directory.
class NatsServer {
 public:
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;
  ~NatsServer() {
    Stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  static absl::StatusOr<std::unique_ptr<NatsServer>> Start(
      NatsServerOptions options = {}) {
    std::unique_ptr<NatsServer> server(new NatsServer(std::move(options)));
    std::string pattern =
        (std::filesystem::temp_directory_path() / "symwire-nats-XXXXXX")
            .string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp ", pattern, " failed"));
    }
    server->dir_ = pattern;
    // A port just freed by the kernel can be taken by someone else before
    // nats-server binds it: retry a few ports.
    absl::Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {
      absl::StatusOr<uint16_t> port = FreePort();
      if (!port.ok()) return port.status();
      server->port_ = *port;
      last = server->Launch();
      if (last.ok()) return server;
    }
    return last;
  }

  uint16_t port() const { return port_; }
  std::string url() const { return absl::StrCat("nats://127.0.0.1:", port_); }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  std::string log() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Stop
  // SIGTERM, wait up to stop_timeout, then SIGKILL. Idempotent.
  void Stop() { Signal(SIGTERM, options_.stop_timeout); }
  // Kill
  // SIGKILL at once (a crash).
  void Kill() { Signal(SIGKILL, options_.stop_timeout); }

  // Restart
  // Stop, then start again on the same port and store directory.
  absl::Status Restart() {
    Stop();
    return Launch();
  }

 private:
  explicit NatsServer(NatsServerOptions options)
      : options_(std::move(options)) {}

  static absl::StatusOr<uint16_t> FreePort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return absl::InternalError("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast)
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      return absl::InternalError("bind/getsockname on 127.0.0.1:0 failed");
    }
    // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  bool CanConnect() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    const bool ok =
        ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
  }

  absl::Status Launch() {
    const std::string config = dir_ + "/server.conf";
    {
      std::ofstream out(config);
      out << "listen: 127.0.0.1:" << port_ << "\n"
          << "jetstream {\n  store_dir: \"" << dir_ << "/store\"\n"
          << "  max_memory_store: " << options_.max_memory_store_bytes << "\n"
          << "  max_file_store: " << options_.max_file_store_bytes << "\n}\n";
      if (!out) return absl::InternalError("cannot write " + config);
    }
    const std::string log_file = dir_ + "/server.log";
    std::vector<std::string> args = {options_.executable, "-c", config, "-l",
                                     log_file};
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    pid_t pid = -1;
    const int rc =
        posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot start ", options_.executable, " (errno ", rc,
                       "); install nats-server (tools/deps.sh)"));
    }
    pid_ = pid;
    // Ready when the port accepts and the log says JetStream is up; a
    // process that exits first failed (e.g. the port was taken). Polled
    // with a bounded deadline.
    const auto deadline =
        std::chrono::steady_clock::now() + options_.start_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int wstatus = 0;
      if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
        pid_ = -1;
        return absl::UnavailableError(absl::StrCat(
            "nats-server exited during start-up on port ", port_, ": ", log()));
      }
      if (CanConnect() && log().find("Server is ready") != std::string::npos) {
        return absl::OkStatus();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Kill();
    return absl::DeadlineExceededError(
        absl::StrCat("nats-server not ready within ",
                     options_.start_timeout.count(), " ms: ", log()));
  }

  void Signal(int signal, std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);  // SIGKILL cannot be ignored: bounded
    pid_ = -1;
  }

  NatsServerOptions options_;
  std::string dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTING_NATS_SERVER_HPP_
