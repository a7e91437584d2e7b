// Kernel-source preprocessing (runtime/src/program.cpp): include expansion with #line
// directives, source names in #line, and BuildOptions::defines as #define lines.
// Input: text, name, header name, header text, header name, header text, macro name,
// macro value, separated by NUL bytes.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "axle/program.hpp"
#include "backend/backend.hpp"
#include "fuzz_util.hpp"

namespace {

std::size_t count_lines(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// A #line directive the preprocessor wrote: one line, the name quoted with no quote,
// backslash or control character inside.
void check_directive(const std::string& line) {
  AXLE_FUZZ_CHECK(line.size() >= 9 && line.back() == '"', line);
  const std::size_t open = line.find('"');
  AXLE_FUZZ_CHECK(open != std::string::npos, line);
  for (std::size_t i = open + 1; i + 1 < line.size(); ++i) {
    const auto u = static_cast<unsigned char>(line[i]);
    AXLE_FUZZ_CHECK(line[i] != '"' && line[i] != '\\' && u >= 0x20 && u != 0x7f, line);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace axle::detail;
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && parts.size() < 8)
      parts.emplace_back();
    else
      parts.back() += static_cast<char>(data[i]);
  }
  parts.resize(8);
  const std::string &text = parts[0], &name = parts[1];

  // The directive for any name is one well-formed line.
  const std::string d = line_directive(7, name);
  AXLE_FUZZ_CHECK(count_lines(d) == 1 && d.back() == '\n' && d.rfind("#line 7 \"", 0) == 0, d);
  check_directive(d.substr(0, d.size() - 1));

  // No headers: the text itself after one directive, every line ended by a newline.
  {
    const std::string out = expand_source(text, name, axle::BuildOptions{});
    std::string want = d;
    want.replace(6, 1, "1");
    want += text;
    if (!text.empty() && text.back() != '\n') want += '\n';
    AXLE_FUZZ_CHECK(out == want, "expansion without headers changed the text");
  }

  // With headers: expands, or refuses nesting deeper than 16; every directive is well formed.
  axle::BuildOptions opts;
  opts.headers.push_back({parts[2], parts[3]});
  opts.headers.push_back({parts[4], parts[5]});
  std::string out;
  if (axle_fuzz::returns_or_throws<axle::InvalidArgument>([&] { out = expand_source(text, name, opts); },
                                                          "expand_source")) {
    std::istringstream in(out);
    std::string first;
    std::getline(in, first);
    check_directive(first);
    AXLE_FUZZ_CHECK(count_lines(out) >= count_lines(text), "lines were lost");
  }

  // Defines: accepted as exactly one #define line, or refused.
  axle::BuildOptions defs;
  defs.defines.push_back({parts[6], parts[7]});
  std::string lines;
  if (axle_fuzz::returns_or_throws<axle::InvalidArgument>([&] { lines = define_lines(defs); }, "define_lines")) {
    AXLE_FUZZ_CHECK(count_lines(lines) == 1 && lines.back() == '\n', lines);
    AXLE_FUZZ_CHECK(lines == "#define " + parts[6] + (parts[7].empty() ? "" : " " + parts[7]) + "\n", lines);
    AXLE_FUZZ_CHECK(parts[7].empty() || parts[7].back() != '\\', "a value ending in a backslash");
  }
  return 0;
}
