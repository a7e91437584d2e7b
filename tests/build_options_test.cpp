// Build options and kernel-source assembly: defines reach the kernel exactly as
// written (never as compiler flags), compiler messages name the user's own file and
// line (headers included), and any source name can be built. The source-assembly
// functions are checked as text; everything else runs on every device present.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "backend/backend.hpp"
#include "test_util.hpp"

namespace {

axle::BuildOptions no_disk() {
  axle::BuildOptions o;
  o.disk_cache = false;
  return o;
}

// Writes the spelling of macro M (as the preprocessor stringifies it) into out,
// one character per int, and its length into out[0].
const char* const kSpell = R"AXLE(
#define AXLE_TEST_STR_(x) #x
#define AXLE_TEST_STR(x) AXLE_TEST_STR_(x)
AXLE_KERNEL void spell(AXLE_GLOBAL int* out) {
  if (AXLE_GLOBAL_ID(0) != 0) return;
  const int n = (int)sizeof(AXLE_TEST_STR(M)) - 1;
  out[0] = n;
  for (int i = 0; i < n && i < 63; ++i) out[1 + i] = AXLE_TEST_STR(M)[i];
}
)AXLE";

// Every line of a 10-line header is harmless.
std::string ten_line_header() {
  std::string h;
  for (int i = 1; i <= 10; ++i) h += "#define TEN_LINE_HEADER_" + std::to_string(i) + " " + std::to_string(i) + "\n";
  return h;
}

// "name:3:" (clang, OpenCL) or "name(3)" (NVRTC).
::testing::AssertionResult names_line(const std::string& log, const std::string& name, int line) {
  const std::string l = std::to_string(line);
  if (log.find(name + ":" + l + ":") != std::string::npos || log.find(name + "(" + l + ")") != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the log does not name " << name << " line " << l << ":\n" << log;
}

class BuildOptionsTest : public ::testing::TestWithParam<axle::Device> {
 protected:
  const axle::Device& dev() const { return GetParam(); }

  // Runs a one-work-item kernel `name` of `p` on an int buffer of 64 and returns it.
  std::vector<int> run(const axle::Program& p, const std::string& name) const {
    axle::Stream s = dev().create_stream();
    axle::Buffer b = dev().alloc<int>(64);
    s.fill(b.view<int>(), 0);
    s.launch(p.kernel(name), axle::Range{1}, axle::Range{}, b.view<int>());
    std::vector<int> out(64);
    s.copy(b, out);
    s.synchronize();
    return out;
  }

  // The spelling of M as the kernel saw it when built with `value`.
  std::string spelling(const std::string& value) const {
    axle::BuildOptions o = no_disk();
    o.define("M", value);
    const std::vector<int> out = run(dev().build(axle::Source::portable(kSpell, "spell.cl"), o), "spell");
    std::string s;
    for (int i = 0; i < out[0] && i < 63; ++i) s += static_cast<char>(out[1 + i]);
    return s;
  }
};

INSTANTIATE_TEST_SUITE_P(Devices, BuildOptionsTest, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BuildOptionsTest);

TEST_P(BuildOptionsTest, EmptyValueDefinesTheNameAsNothing) {
  const char* src = R"(
#if !defined(NOTHING)
#error NOTHING is not defined
#endif
AXLE_KERNEL void k(AXLE_GLOBAL int* out) {
  int x = 5 NOTHING;
  out[0] = x;
}
)";
  axle::BuildOptions o = no_disk();
  o.define("NOTHING", "");
  EXPECT_EQ(run(dev().build(axle::Source::portable(src, "empty_define.cl"), o), "k")[0], 5);
}

TEST_P(BuildOptionsTest, ValuesWithSpacesQuotesAndBackslashesArriveAsWritten) {
  const char* src = R"(
AXLE_KERNEL void k(AXLE_GLOBAL int* out) {
  out[0] = EXPR * 2;
  out[1] = (int)sizeof(STR);
  out[2] = STR[1];
  out[3] = BACKSLASH;
  out[4] = (int)sizeof(ESCAPED);
  out[5] = ESCAPED[1];
  out[6] = ESCAPED[2];
}
)";
  axle::BuildOptions o = no_disk();
  o.define("EXPR", "(3 + 4)").define("STR", "\"a b\"").define("BACKSLASH", "'\\\\'").define("ESCAPED", "\"x\\\\\\\"\"");
  const std::vector<int> out = run(dev().build(axle::Source::portable(src, "values.cl"), o), "k");
  EXPECT_EQ(out[0], 14);   // (3 + 4) * 2, parentheses kept
  EXPECT_EQ(out[1], 4);    // "a b" and its NUL
  EXPECT_EQ(out[2], ' ');  // the space inside the literal
  EXPECT_EQ(out[3], '\\');
  EXPECT_EQ(out[4], 4);  // "x\\\"" is x, backslash, quote and NUL
  EXPECT_EQ(out[5], '\\');
  EXPECT_EQ(out[6], '"');
  // The preprocessor sees each value token for token.
  EXPECT_EQ(spelling("(3 + 4)"), "(3 + 4)");
  EXPECT_EQ(spelling("\"a b\""), "\"a b\"");
  EXPECT_EQ(spelling("'\\\\'"), "'\\\\'");
}

TEST_P(BuildOptionsTest, ValuesNeverBecomeCompilerFlags) {
  const char* src = R"(
#ifdef Y
#error a define's value defined Y
#endif
#ifdef __FAST_RELAXED_MATH__
#error a define's value turned on -cl-fast-relaxed-math
#endif
AXLE_KERNEL void k(AXLE_GLOBAL int* out) { out[0] = 42; }
)";
  axle::BuildOptions o = no_disk();
  o.define("A", "1 -DY=2").define("B", "1 -cl-fast-relaxed-math");
  EXPECT_EQ(run(dev().build(axle::Source::portable(src, "inject.cl"), o), "k")[0], 42);
  // They are macro values, spelled as given.
  EXPECT_EQ(spelling("1 -DY=2"), "1 -DY=2");
  EXPECT_EQ(spelling("1 -cl-fast-relaxed-math"), "1 -cl-fast-relaxed-math");
}

TEST_P(BuildOptionsTest, BadDefinesAreRejectedByName) {
  const auto src = axle::Source::portable("AXLE_KERNEL void k(AXLE_GLOBAL int* out) { out[0] = 1; }\n", "k.cl");
  for (const char* bad : {"1X", "A B", "X=1", "", "MAX(a,b)", "-DZ"}) {
    axle::BuildOptions o = no_disk();
    o.define(bad, "1");
    AXLE_EXPECT_THROW_MSG(dev().build(src, o), axle::InvalidArgument,
                          {std::string("'") + bad + "'", "not a valid macro name"});
  }
  {
    axle::BuildOptions o = no_disk();
    o.define("TWO_LINES", "1\n#define Y 2");
    AXLE_EXPECT_THROW_MSG(dev().build(src, o), axle::InvalidArgument, {"'TWO_LINES'", "line break"});
  }
  {
    axle::BuildOptions o = no_disk();
    o.define("CR", "1\r2");
    AXLE_EXPECT_THROW_MSG(dev().build(src, o), axle::InvalidArgument, {"'CR'", "line break"});
  }
  {
    axle::BuildOptions o = no_disk();
    o.define("TRAILING", "a\\");
    AXLE_EXPECT_THROW_MSG(dev().build(src, o), axle::InvalidArgument, {"'TRAILING'", "backslash"});
  }
}

TEST_P(BuildOptionsTest, DefinesArePartOfTheCacheKey) {
  const auto src = axle::Source::portable("AXLE_KERNEL void k(AXLE_GLOBAL int* out) { out[0] = V; }\n", "key.cl");
  axle::BuildOptions a = no_disk(), b = no_disk();
  a.define("V", "(1 + 2)");
  b.define("V", "(1 + 3)");
  const axle::Program pa = dev().build(src, a);
  const axle::Program pb = dev().build(src, b);
  EXPECT_NE(pa.cache_key(), pb.cache_key());
  EXPECT_EQ(dev().build(src, a).cache_key(), pa.cache_key());
  EXPECT_EQ(run(pa, "k")[0], 3);
  EXPECT_EQ(run(pb, "k")[0], 4);
}

TEST_P(BuildOptionsTest, ErrorsNameTheUsersLineAfterAHeader) {
  // Line 1 includes a 10-line header; the error is on line 3 of the user's file.
  const char* src =
      "#include \"ten.h\"\n"
      "AXLE_KERNEL void k(AXLE_GLOBAL int* out) {\n"
      "  out[0] = undeclared_on_line_3;\n"
      "}\n";
  axle::BuildOptions o = no_disk();
  o.header("ten.h", ten_line_header());
  try {
    dev().build(axle::Source::portable(src, "user_source.cl"), o);
    ADD_FAILURE() << "expected a BuildError";
  } catch (const axle::BuildError& e) {
    EXPECT_TRUE(names_line(e.log(), "user_source.cl", 3));
    EXPECT_TRUE(names_line(e.what(), "user_source.cl", 3));
    EXPECT_NE(e.log().find("undeclared_on_line_3"), std::string::npos) << e.log();
  }
  // An error inside a header names the header and its own line.
  axle::BuildOptions bad = no_disk();
  std::string h = ten_line_header();
  h.replace(h.find("#define TEN_LINE_HEADER_5"), 0, "int header_error_on_line_5 = ;\n");
  bad.header("ten.h", h);
  try {
    dev().build(axle::Source::portable(src, "user_source.cl"), bad);
    ADD_FAILURE() << "expected a BuildError";
  } catch (const axle::BuildError& e) {
    EXPECT_TRUE(names_line(e.log(), "ten.h", 5));
  }
}

TEST_P(BuildOptionsTest, NativeOpenCLErrorsNameTheUsersLineAfterAHeader) {
  if (dev().backend() != "opencl") GTEST_SKIP() << "native OpenCL C builds on OpenCL devices only";
  const char* src =
      "#include \"ten.h\"\n"
      "__kernel void k(__global int* out) {\n"
      "  out[0] = undeclared_on_line_3;\n"
      "}\n";
  axle::BuildOptions o = no_disk();
  o.header("ten.h", ten_line_header());
  try {
    dev().build(axle::Source::opencl(src, "native.cl"), o);
    ADD_FAILURE() << "expected a BuildError";
  } catch (const axle::BuildError& e) {
    EXPECT_TRUE(names_line(e.log(), "native.cl", 3));
  }
}

TEST_P(BuildOptionsTest, SourceNamesWithNewlinesQuotesAndBackslashesBuild) {
  const char* ok = "AXLE_KERNEL void k(AXLE_GLOBAL int* out) { out[0] = 42; }\n";
  for (const std::string name : {"my\nkernel.cl", "say \"hi\".cl", "dir\\kernel.cl", "tab\tand\rcr.cl"})
    EXPECT_EQ(run(dev().build(axle::Source::portable(ok, name), no_disk()), "k")[0], 42) << name;
  // Errors name the file with those characters replaced by '_'.
  const char* broken = "\n\nAXLE_KERNEL void k(AXLE_GLOBAL int* out) { out[0] = undeclared; }\n";
  try {
    dev().build(axle::Source::portable(broken, "my\nkernel \"v2\".cl"), no_disk());
    ADD_FAILURE() << "expected a BuildError";
  } catch (const axle::BuildError& e) {
    EXPECT_TRUE(names_line(e.log(), "my_kernel _v2_.cl", 3));
    EXPECT_NE(std::string(e.what()).find("my\nkernel \"v2\".cl"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- source assembly as text

TEST(SourceAssembly, DefineLines) {
  axle::BuildOptions o;
  o.define("A", "(3 + 4)").define("EMPTY", "").define("S", "\"a \\\\ b\"").define("N", 7);
  EXPECT_EQ(axle::detail::define_lines(o), "#define A (3 + 4)\n#define EMPTY\n#define S \"a \\\\ b\"\n#define N 7\n");
  EXPECT_EQ(axle::detail::define_lines(axle::BuildOptions{}), "");
  axle::BuildOptions bad;
  bad.define("9LIVES");
  AXLE_EXPECT_THROW_MSG(axle::detail::define_lines(bad), axle::InvalidArgument, {"'9LIVES'"});
}

TEST(SourceAssembly, HeadersKeepLineNumbers) {
  axle::BuildOptions o;
  o.header("h.h", "h1\n#include \"g.h\"\nh3\n").header("g.h", "g1\n");
  const std::string text = axle::detail::expand_source("a\n#include \"h.h\"\n  #  include \"other.h\"\nd\n", "s.cl", o);
  EXPECT_EQ(text,
            "#line 1 \"s.cl\"\n"
            "a\n"
            "#line 1 \"h.h\"\n"
            "h1\n"
            "#line 1 \"g.h\"\n"
            "g1\n"
            "#line 3 \"h.h\"\n"
            "h3\n"
            "#line 3 \"s.cl\"\n"
            "  #  include \"other.h\"\n"
            "d\n");
}

TEST(SourceAssembly, LineDirectiveNames) {
  EXPECT_EQ(axle::detail::line_directive(1, "k.cl"), "#line 1 \"k.cl\"\n");
  EXPECT_EQ(axle::detail::line_directive(12, "a\"b\\c\nd\te.cl"), "#line 12 \"a_b_c_d_e.cl\"\n");
}

}  // namespace
