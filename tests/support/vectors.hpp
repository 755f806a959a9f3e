// File: tests/support/vectors.hpp
// Test support (not part of the library). Loads the golden vectors of
// tests/vectors/*.md (llhttp-style Markdown, see tests/vectors/frames.md for
// the format) so the C++ tests can run the codec against them. Header-only;
// throws std::runtime_error on a missing or malformed file, so a typo in a
// vector fails the test run instead of silently skipping cases.
//
// File grammar (the same as tools/vectors_ref.py):
//   - A line starting with "## " starts a vector; the rest of the line,
//     trimmed, is its name (unique within the file).
//   - A line starting with "```" opens a fenced block whose info string is the
//     rest of the line, trimmed; a line that is exactly "```" (after trimming)
//     closes it. Blocks before the first vector are ignored (introduction).
//     Inside a vector the info string must be "hex", "options" or "log", each
//     at most once; "hex" and a non-empty "log" are required.
//   - hex: space-separated two-digit hex bytes on any number of lines; '#'
//     starts a comment running to the end of the line. May be empty.
//   - options: one key=value per non-blank line.
//   - log: one entry per non-blank line, trimmed.
#ifndef SYMWIRE_TESTS_SUPPORT_VECTORS_HPP_
#define SYMWIRE_TESTS_SUPPORT_VECTORS_HPP_

#include <cstddef>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace symwire::testing {

// Vector
// One `## ` section of a vector file.
struct Vector {
  std::string file;  // base name of the file it came from ("frames.md")
  std::string name;  // the heading, without "## "
  std::vector<std::byte> input;                              // the hex block
  std::vector<std::pair<std::string, std::string>> options;  // in file order
  std::vector<std::string> log;  // expected log lines, in order
};

// LogLine
// A log entry split into its leading name ("frame", "error", "preface",
// "incomplete", "crc", ...) and its key=value tokens in order. Keys may repeat
// ("metadata", "ext"). For crc32c.md/varint.md lines, which start with a
// key=value token ("crc=0x...", "value=37 size=1"), `name` is empty and every
// token is a field.
struct LogLine {
  std::string name;
  std::vector<std::pair<std::string, std::string>> fields;

  // The value of the first field named `key`, or nullptr.
  const std::string* Find(std::string_view key) const {
    for (const auto& [k, v] : fields) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  // The values of every field named `key`, in order.
  std::vector<std::string> FindAll(std::string_view key) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : fields) {
      if (k == key) out.push_back(v);
    }
    return out;
  }
};

namespace vectors_detail {

inline std::string_view Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const size_t last = s.find_last_not_of(kSpace);
  return s.substr(first, last - first + 1);
}

inline int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

[[noreturn]] inline void Fail(const std::string& path, size_t line,
                              const std::string& what) {
  throw std::runtime_error(path + ":" + std::to_string(line) + ": " + what);
}

inline std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Appends the bytes of one hex-block line (comment already allowed).
inline void ParseHexLine(std::string_view line, std::vector<std::byte>& out,
                         const std::string& path, size_t line_no) {
  const size_t hash = line.find('#');
  if (hash != std::string_view::npos) line = line.substr(0, hash);
  size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t' &&
           line[end] != '\r') {
      ++end;
    }
    const std::string_view tok = line.substr(i, end - i);
    const int hi = tok.size() == 2 ? HexDigit(tok[0]) : -1;
    const int lo = tok.size() == 2 ? HexDigit(tok[1]) : -1;
    if (hi < 0 || lo < 0) {
      Fail(path, line_no, "bad hex token '" + std::string(tok) + "'");
    }
    out.push_back(static_cast<std::byte>((hi << 4) | lo));
    i = end;
  }
}

}  // namespace vectors_detail

// LoadVectors
// Parses one vector file. Throws std::runtime_error if the file cannot be
// read, holds no vector, or breaks the grammar above.
inline std::vector<Vector> LoadVectors(const std::string& path) {
  using vectors_detail::Fail;
  using vectors_detail::Trim;

  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open vector file " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  std::vector<std::string_view> lines;
  {
    size_t start = 0;
    while (start <= text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      std::string_view line(text.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
      start = nl + 1;
    }
  }

  const std::string file = vectors_detail::BaseName(path);
  std::vector<Vector> vectors;
  // Per vector: which blocks were seen, and the heading's line number.
  struct Seen {
    bool hex = false;
    bool options = false;
    bool log = false;
    size_t line = 0;
  };
  std::vector<Seen> seen;

  size_t i = 0;
  while (i < lines.size()) {
    const std::string_view line = lines[i];
    const size_t line_no = i + 1;
    if (line.substr(0, 3) == "```") {
      const std::string_view info = Trim(line.substr(3));
      ++i;
      const size_t body_begin = i;
      while (i < lines.size() && Trim(lines[i]) != "```") ++i;
      if (i >= lines.size()) Fail(path, line_no, "unterminated ``` block");
      const size_t body_end = i;
      ++i;                            // the closing fence
      if (vectors.empty()) continue;  // a block in the introduction
      Vector& v = vectors.back();
      Seen& s = seen.back();
      bool* flag = nullptr;
      if (info == "hex") {
        flag = &s.hex;
      } else if (info == "options") {
        flag = &s.options;
      } else if (info == "log") {
        flag = &s.log;
      } else {
        Fail(path, line_no,
             "unexpected block '" + std::string(info) + "' in " + v.name);
      }
      if (*flag) {
        Fail(path, line_no,
             "second '" + std::string(info) + "' block in " + v.name);
      }
      *flag = true;
      for (size_t j = body_begin; j < body_end; ++j) {
        const std::string_view body = lines[j];
        if (info == "hex") {
          vectors_detail::ParseHexLine(body, v.input, path, j + 1);
          continue;
        }
        const std::string_view t = Trim(body);
        if (t.empty()) continue;
        if (info == "log") {
          v.log.emplace_back(t);
          continue;
        }
        const size_t eq = t.find('=');
        if (eq == std::string_view::npos || eq == 0) {
          Fail(path, j + 1, "option is not key=value: " + std::string(t));
        }
        v.options.emplace_back(std::string(Trim(t.substr(0, eq))),
                               std::string(Trim(t.substr(eq + 1))));
      }
      continue;
    }
    if (line.substr(0, 3) == "## ") {
      Vector v;
      v.file = file;
      v.name = std::string(Trim(line.substr(3)));
      if (v.name.empty()) Fail(path, line_no, "empty vector name");
      for (const Vector& other : vectors) {
        if (other.name == v.name) {
          Fail(path, line_no, "duplicate vector name '" + v.name + "'");
        }
      }
      vectors.push_back(std::move(v));
      seen.push_back(Seen{.line = line_no});
    }
    ++i;
  }

  if (vectors.empty()) throw std::runtime_error(path + ": no vectors");
  for (size_t k = 0; k < vectors.size(); ++k) {
    if (!seen[k].hex) Fail(path, seen[k].line, "no hex block");
    if (vectors[k].log.empty()) Fail(path, seen[k].line, "no or empty log");
  }
  return vectors;
}

#ifdef SYMWIRE_VECTORS_DIR
// The directory holding the vector files, from the build.
inline constexpr std::string_view kVectorsDir = SYMWIRE_VECTORS_DIR;

// LoadVectorFile
// LoadVectors(dir + "/" + file_name), e.g. LoadVectorFile("frames.md").
inline std::vector<Vector> LoadVectorFile(
    const std::string& file_name,
    const std::string& dir = std::string(kVectorsDir)) {
  return LoadVectors(dir + "/" + file_name);
}
#endif

// SplitLogLine
// Splits a log line at single spaces. A leading token without '=' is the
// name; every other token must be key=value (split at its first '=', so
// "metadata=6b:76" is {"metadata", "6b:76"}). Throws std::runtime_error on a
// token without '=' after the first one.
inline LogLine SplitLogLine(std::string_view line) {
  LogLine out;
  size_t i = 0;
  bool first = true;
  while (i < line.size()) {
    if (line[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = line.find(' ', i);
    if (end == std::string_view::npos) end = line.size();
    const std::string_view tok = line.substr(i, end - i);
    const size_t eq = tok.find('=');
    if (eq == std::string_view::npos) {
      if (!first) {
        throw std::runtime_error("log token without '=': '" + std::string(tok) +
                                 "' in: " + std::string(line));
      }
      out.name = std::string(tok);
    } else {
      out.fields.emplace_back(std::string(tok.substr(0, eq)),
                              std::string(tok.substr(eq + 1)));
    }
    first = false;
    i = end;
  }
  return out;
}

// GetOption
// The value of option `key` of a vector (the last one if repeated).
inline std::optional<std::string> GetOption(const Vector& v,
                                            std::string_view key) {
  std::optional<std::string> out;
  for (const auto& [k, val] : v.options) {
    if (k == key) out = val;
  }
  return out;
}

// ToLogHex
// Bytes as the log writes them: lower-case contiguous hex, "-" when empty.
inline std::string ToLogHex(std::span<const std::byte> bytes) {
  if (bytes.empty()) return "-";
  constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::byte b : bytes) {
    const auto u = std::to_integer<unsigned>(b);
    out.push_back(kDigits[u >> 4]);
    out.push_back(kDigits[u & 0xFu]);
  }
  return out;
}

// FromLogHex
// The inverse of ToLogHex ("-" is empty). Throws std::runtime_error on an
// odd length or a non-hex digit.
inline std::vector<std::byte> FromLogHex(std::string_view hex) {
  std::vector<std::byte> out;
  if (hex == "-") return out;
  if (hex.size() % 2 != 0) {
    throw std::runtime_error("odd-length hex: " + std::string(hex));
  }
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = vectors_detail::HexDigit(hex[i]);
    const int lo = vectors_detail::HexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      throw std::runtime_error("bad hex: " + std::string(hex));
    }
    out.push_back(static_cast<std::byte>((hi << 4) | lo));
  }
  return out;
}

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTS_SUPPORT_VECTORS_HPP_
