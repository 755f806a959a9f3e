// File: tools/cli/args.hpp
// symwire_cli::Args: the one command-line parser of every program the
// project builds (tools/, bench/, examples/). Not part of the library's API:
// nothing under include/symwire uses it, and it is not installed.
//
// Behaviour, the same in every program:
//   --NAME VALUE and --NAME=VALUE; a switch (--json) takes no value.
//   -h, --help   prints to stdout the usage line, the description, one line
//                per flag with its default, and exits 0.
//   an unknown flag, a missing value, a value that does not parse or is out
//   of range, an unexpected argument: one line on stderr naming the flag and
//   the value, a pointer to --help, exit status 2. Programs check relations
//   between flags after Parse() and report them with Fail() (also exit 2).
//
// Why not Abseil flags (absl::flags, in Debian 12's libabsl-dev 20220623):
// there, absl::ParseCommandLine exits with status 1 after `--help` and after
// an unknown flag or a bad value (std::exit inside the library, with no
// option to change it), and its help groups the flags by source file among
// those of every linked library. The project's programs promise 0 for
// --help and 2 for a usage error (bench/run_e2e.sh, tests/dump), and the
// peer bench programs (raw-tcp-bench, zmq-bench, grpc-bench) do not link
// Abseil at all. So this header needs only the standard library.
#ifndef SYMWIRE_TOOLS_CLI_ARGS_HPP_
#define SYMWIRE_TOOLS_CLI_ARGS_HPP_

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace symwire_cli {

class Args {
 public:
  // Set: stores a flag's value; false (with `want` describing what a valid
  // value looks like) when the text is not one.
  using Set = std::function<bool(std::string_view text, std::string& want)>;

  // `synopsis` follows the program name on the usage line, e.g.
  // "[flags] [FILE | -]"; `description` is printed under it.
  Args(std::string program, std::string synopsis, std::string description)
      : program_(std::move(program)),
        synopsis_(std::move(synopsis)),
        description_(std::move(description)) {}

  // A switch: its presence stores `value` in *out.
  Args& Switch(std::string name, bool* out, std::string help,
               bool value = true) {
    Flag f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.default_text = *out == value ? "on" : "off";
    f.set = [out, value](std::string_view, std::string&) {
      *out = value;
      return true;
    };
    flags_.push_back(std::move(f));
    return *this;
  }

  // An integer in [min, max]; the default shown is *out's current value.
  template <std::integral T>
  Args& Int(std::string name, T* out, std::string value_name, std::string help,
            T min = std::numeric_limits<T>::min(),
            T max = std::numeric_limits<T>::max()) {
    return Value(std::move(name), std::move(value_name), std::move(help),
                 std::to_string(*out),
                 [out, min, max](std::string_view text, std::string& want) {
                   want = "an integer in " + std::to_string(min) + ".." +
                          std::to_string(max);
                   T v{};
                   const char* end = text.data() + text.size();
                   const auto [p, ec] = std::from_chars(text.data(), end, v);
                   if (ec != std::errc() || p != end || v < min || v > max) {
                     return false;
                   }
                   *out = v;
                   return true;
                 });
  }

  // A finite number in [min, max].
  Args& Double(std::string name, double* out, std::string value_name,
               std::string help, double min, double max) {
    return Value(std::move(name), std::move(value_name), std::move(help),
                 Format(*out),
                 [out, min, max](std::string_view text, std::string& want) {
                   want = "a number in " + Format(min) + ".." + Format(max);
                   const std::string s(text);
                   char* end = nullptr;
                   const double v = std::strtod(s.c_str(), &end);
                   if (s.empty() || end != s.c_str() + s.size() ||
                       !std::isfinite(v) || v < min || v > max) {
                     return false;
                   }
                   *out = v;
                   return true;
                 });
  }

  // A non-empty string; the default shown is *out, or "none" when empty.
  Args& String(std::string name, std::string* out, std::string value_name,
               std::string help) {
    return Value(std::move(name), std::move(value_name), std::move(help),
                 out->empty() ? "none" : *out,
                 [out](std::string_view text, std::string& want) {
                   want = "a non-empty value";
                   if (text.empty()) return false;
                   *out = std::string(text);
                   return true;
                 });
  }

  // One of `choices`.
  Args& Choice(std::string name, std::string* out,
               std::vector<std::string> choices, std::string help) {
    std::string value_name;
    for (const std::string& c : choices) {
      value_name += (value_name.empty() ? "" : "|") + c;
    }
    return Value(std::move(name), value_name, std::move(help),
                 out->empty() ? "none" : *out,
                 [out, choices = std::move(choices), value_name](
                     std::string_view text, std::string& want) {
                   want = "one of " + value_name;
                   for (const std::string& c : choices) {
                     if (text == c) {
                       *out = c;
                       return true;
                     }
                   }
                   return false;
                 });
  }

  // Any other value: `set` parses and stores it.
  Args& Value(std::string name, std::string value_name, std::string help,
              std::string default_text, Set set) {
    Flag f;
    f.name = std::move(name);
    f.value_name = std::move(value_name);
    f.help = std::move(help);
    f.default_text = std::move(default_text);
    f.set = std::move(set);
    flags_.push_back(std::move(f));
    return *this;
  }

  // Replaces the default shown for the flag added last (e.g. "4 MiB").
  Args& Default(std::string text) {
    flags_.back().default_text = std::move(text);
    return *this;
  }

  // The one positional argument (at most one), stored in *out.
  Args& Positional(std::string name, std::string* out, std::string help) {
    positional_name_ = std::move(name);
    positional_help_ = std::move(help);
    positional_default_ = *out;
    positional_ = out;
    return *this;
  }

  // Text printed after the flags by --help.
  Args& Epilogue(std::string text) {
    epilogue_ = std::move(text);
    return *this;
  }

  // Parses argv[1..argc); returns only when every argument was valid.
  void Parse(int argc, char** argv) {
    bool positional_seen = false;
    bool flags_done = false;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (!flags_done && (arg == "-h" || arg == "--help")) {
        PrintHelp(stdout);
        std::exit(0);
      }
      if (!flags_done && arg == "--") {
        flags_done = true;
        continue;
      }
      if (flags_done || arg == "-" || !arg.starts_with("-")) {
        if (positional_ == nullptr || positional_seen) {
          Fail("unexpected argument '" + std::string(arg) + "'");
        }
        *positional_ = std::string(arg);
        positional_seen = true;
        continue;
      }
      const size_t eq = arg.find('=');
      const std::string_view name = arg.substr(0, eq);
      Flag* flag = Find(name);
      if (flag == nullptr) Fail("unknown flag " + std::string(name));
      std::string_view value;
      if (flag->value_name.empty()) {
        if (eq != std::string_view::npos) {
          Fail(std::string(name) + " takes no value (got '" +
               std::string(arg.substr(eq + 1)) + "')");
        }
      } else if (eq != std::string_view::npos) {
        value = arg.substr(eq + 1);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        Fail(std::string(name) + " needs a value (" + flag->value_name + ")");
      }
      std::string want;
      if (!flag->set(value, want)) {
        Fail("bad value '" + std::string(value) + "' for " + flag->name +
             ": want " + want);
      }
      flag->seen = true;
    }
  }

  // True when the command line gave flag `name` (e.g. "--seed").
  bool Seen(std::string_view name) const {
    for (const Flag& f : flags_) {
      if (f.name == name) return f.seen;
    }
    return false;
  }

  // A usage error found after Parse(): prints it and exits with status 2.
  [[noreturn]] void Fail(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n(%s --help lists the flags)\n",
                 program_.c_str(), message.c_str(), program_.c_str());
    std::exit(2);
  }

  void PrintHelp(std::FILE* out) const {
    std::fprintf(out, "usage: %s %s\n", program_.c_str(), synopsis_.c_str());
    if (!description_.empty()) std::fprintf(out, "%s\n", description_.c_str());
    std::fprintf(out, "\n");
    if (positional_ != nullptr) {
      std::fprintf(out, "arguments:\n");
      Line(out, positional_name_, positional_help_,
           positional_default_.empty() ? "" : positional_default_);
      std::fprintf(out, "\n");
    }
    std::fprintf(out, "flags:\n");
    for (const Flag& f : flags_) {
      Line(out,
           f.name + (f.value_name.empty() ? std::string() : " " + f.value_name),
           f.help, f.default_text);
    }
    Line(out, "-h, --help", "print this help and exit", "");
    if (!epilogue_.empty()) std::fprintf(out, "\n%s\n", epilogue_.c_str());
  }

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty: a switch
    std::string help;
    std::string default_text;
    Set set;
    bool seen = false;
  };

  static std::string Format(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
  }

  static void Line(std::FILE* out, const std::string& left,
                   const std::string& help, const std::string& default_text) {
    // A long left column gets a line of its own.
    const char* wrap =
        left.size() > 26 ? "\n                             " : "";
    std::fprintf(out, "  %-26s%s %s%s%s%s\n", left.c_str(), wrap, help.c_str(),
                 default_text.empty() ? "" : " (default: ",
                 default_text.c_str(), default_text.empty() ? "" : ")");
  }

  Flag* Find(std::string_view name) {
    for (Flag& f : flags_) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  std::string program_;
  std::string synopsis_;
  std::string description_;
  std::string positional_name_;
  std::string positional_help_;
  std::string positional_default_;
  std::string epilogue_;
  std::string* positional_ = nullptr;
  std::vector<Flag> flags_;
};

}  // namespace symwire_cli

#endif  // SYMWIRE_TOOLS_CLI_ARGS_HPP_
