// File: fuzz/replay_main.cpp
// A main() for builds without libFuzzer (g++, or clang without
// -fsanitize=fuzzer): runs LLVMFuzzerTestOneInput once on every file named
// on the command line or found (recursively, in sorted order) under a
// directory named there, then prints "replayed N inputs". ctest runs it on
// fuzz/corpus/<target>/ so every seed and every saved finding is a
// regression test under every compiler (after fmtlib's
// test/fuzzing/main.cc).
//
// Arguments starting with '-' (libFuzzer flags) are ignored, so a libFuzzer
// command line can be replayed as is. Exit status: 0 if every input ran;
// 1 if an argument is missing or no input was found; a failed invariant or
// sanitizer report aborts, and the input's path is printed first.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The input being run, for the crash handler (async-signal-safe: a fixed
// buffer written with write(2)).
char g_current[4096];

extern "C" void OnFatalSignal(int sig) {
  static const char kPrefix[] = "\nreplay: crashed on input: ";
  ssize_t ignored = write(STDERR_FILENO, kPrefix, sizeof(kPrefix) - 1);
  ignored =
      write(STDERR_FILENO, g_current, strnlen(g_current, sizeof(g_current)));
  ignored = write(STDERR_FILENO, "\n", 1);
  static_cast<void>(ignored);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void InstallHandlers() {
  for (int sig : {SIGABRT, SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP}) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = OnFatalSignal;
    sa.sa_flags = static_cast<int>(SA_RESETHAND);
    sigaction(sig, &sa, nullptr);
  }
}

bool ReadFile(const std::filesystem::path& path, std::vector<char>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in),
             std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  InstallHandlers();
  std::vector<std::filesystem::path> files;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;  // a libFuzzer flag
    const std::filesystem::path path(arg);
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<std::filesystem::path> found;
      for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
           !ec && it != std::filesystem::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file(ec)) found.push_back(it->path());
      }
      if (ec) {
        std::fprintf(stderr, "replay: cannot list %s: %s\n", arg.c_str(),
                     ec.message().c_str());
        ok = false;
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (std::filesystem::is_regular_file(path, ec)) {
      files.push_back(path);
    } else {
      std::fprintf(stderr, "replay: no such file or directory: %s\n",
                   arg.c_str());
      ok = false;
    }
  }

  size_t replayed = 0;
  std::vector<char> bytes;
  for (const auto& file : files) {
    const std::string name = file.string();
    std::snprintf(g_current, sizeof(g_current), "%s", name.c_str());
    if (!ReadFile(file, bytes)) {
      std::fprintf(stderr, "replay: cannot read %s\n", name.c_str());
      ok = false;
      continue;
    }
    // An exactly sized heap copy, as libFuzzer passes it, so a read past
    // the end is caught by ASan even for an empty input.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size()]);
    if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
    LLVMFuzzerTestOneInput(copy.get(), bytes.size());
    ++replayed;
  }
  std::printf("replayed %zu inputs\n", replayed);
  if (replayed == 0) {
    std::fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  return ok ? 0 : 1;
}
