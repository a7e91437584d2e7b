// AXLE_LOG and device specs: parsed whole, every documented form means what it says,
// and anything else is an error that names the spec and what is wrong with it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "log_levels.hpp"
#include "test_util.hpp"

using axle_test::ScopedEnv;
using axle_test::TempDir;

namespace {

// Levels are read from the environment on first use: forget them on both ends.
class AxleLog : public ::testing::Test {
 protected:
  void SetUp() override { axle::detail::reset_log_levels_for_testing(); }
  void TearDown() override {
    axle::detail::reset_log_levels_for_testing();
    axle::set_log_levels("off");
  }
  // The levels of every subsystem after (re)reading AXLE_LOG and the config, and what
  // was printed while doing so.
  std::string levels(std::string* note = nullptr) {
    axle::detail::reset_log_levels_for_testing();
    ::testing::internal::CaptureStderr();
    std::string s;
    for (const char* sub : {"rt", "jit", "mem", "opencl", "cuda", "blas"})
      s += std::string(s.empty() ? "" : " ") + sub + "=" + axle::detail::log_level(sub);
    const std::string err = ::testing::internal::GetCapturedStderr();
    if (note) *note = err;
    return s;
  }
};

}  // namespace

TEST_F(AxleLog, BadItemAppliesNothingAndIsNamed) {
  ScopedEnv log("AXLE_LOG", "debug,jit=bogus");
  std::string note;
  EXPECT_EQ(levels(&note), "rt=off jit=off mem=off opencl=off cuda=off blas=off");
  EXPECT_TRUE(axle_test::contains_all(note, {"ignoring AXLE_LOG", "'bogus'", "'jit=bogus'"}));
  // set_log_levels: rejected whole, the levels in effect stay.
  axle::set_log_levels("mem=info");
  AXLE_EXPECT_THROW_MSG(axle::set_log_levels("debug,jit=bogus"), axle::ConfigError, {"'bogus'", "jit=bogus"});
  EXPECT_EQ(axle::detail::log_level("rt"), "off");
  EXPECT_EQ(axle::detail::log_level("mem"), "info");
}

TEST_F(AxleLog, ItemsAreTrimmed) {
  ScopedEnv log("AXLE_LOG", " rt=debug, jit = trace ,, axle.blas=warn ");
  std::string note;
  EXPECT_EQ(levels(&note), "rt=debug jit=trace mem=off opencl=off cuda=off blas=warn");
  EXPECT_EQ(note, "");
  axle::set_log_levels("info, jit=off");
  EXPECT_EQ(axle::detail::log_level("rt"), "info");
  EXPECT_EQ(axle::detail::log_level("jit"), "off");
}

TEST_F(AxleLog, UnknownSubsystemIsRejected) {
  AXLE_EXPECT_THROW_MSG(axle::set_log_levels("jti=debug"), axle::ConfigError,
                        {"unknown subsystem 'jti'", "rt, jit, mem, opencl, cuda, blas"});
  AXLE_EXPECT_THROW_MSG(axle::set_log_levels("=debug"), axle::ConfigError, {"'=debug'", "no subsystem"});
  ScopedEnv log("AXLE_LOG", "rt=info,gemm=debug");
  std::string note;
  EXPECT_EQ(levels(&note), "rt=off jit=off mem=off opencl=off cuda=off blas=off");
  EXPECT_TRUE(axle_test::contains_all(note, {"ignoring AXLE_LOG", "unknown subsystem 'gemm'"}));
}

TEST_F(AxleLog, EmptyVariableCountsAsUnset) {
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  const std::string cfg = tmp.write("c.toml", "log = \"jit=info\"\n");
  ScopedEnv c("AXLE_CONFIG", cfg);
  {
    ScopedEnv log("AXLE_LOG", "");
    EXPECT_EQ(levels(), "rt=off jit=info mem=off opencl=off cuda=off blas=off");
  }
  {
    ScopedEnv log("AXLE_LOG", "rt=warn");  // the variable wins over the config
    EXPECT_EQ(levels(), "rt=warn jit=off mem=off opencl=off cuda=off blas=off");
  }
  {
    ScopedEnv log("AXLE_LOG", "rt=loud");  // a rejected variable leaves the config in effect
    std::string note;
    EXPECT_EQ(levels(&note), "rt=off jit=info mem=off opencl=off cuda=off blas=off");
    EXPECT_TRUE(axle_test::contains_all(note, {"ignoring AXLE_LOG", "'loud'"}));
  }
  const std::string bad = tmp.write("bad.toml", "log = \"jit=info,nope=debug\"\n");
  ScopedEnv c2("AXLE_CONFIG", bad);
  ScopedEnv log("AXLE_LOG", std::nullopt);
  std::string note;
  EXPECT_EQ(levels(&note), "rt=off jit=off mem=off opencl=off cuda=off blas=off");
  EXPECT_TRUE(axle_test::contains_all(note, {bad, "unknown subsystem 'nope'"}));
}

// ------------------------------------------------------------------ device specs

namespace {

void expect_malformed(const std::string& spec, std::initializer_list<std::string> parts) {
  SCOPED_TRACE("spec '" + spec + "'");
  try {
    axle::select_device(spec);
    ADD_FAILURE() << "'" << spec << "' selected a device";
  } catch (const axle::InvalidArgument& e) {
    EXPECT_TRUE(axle_test::contains_all(e.what(), {"'" + spec + "'", "is not a device spec"}));
    EXPECT_TRUE(axle_test::contains_all(e.what(), parts));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "'" << spec << "': expected InvalidArgument, got: " << e.what();
  }
}

void expect_unavailable(const std::string& spec, std::initializer_list<std::string> parts) {
  SCOPED_TRACE("spec '" + spec + "'");
  AXLE_EXPECT_THROW_MSG(axle::select_device(spec), axle::DeviceUnavailable, parts);
}

bool cuda_usable() {
  for (const auto& b : axle::backends())
    if (b.name == "cuda") return b.available;
  return false;
}


}  // namespace

TEST(DeviceSpec, MalformedSpecsAreInvalidArgument) {
  expect_malformed("", {"empty"});
  expect_malformed("   ", {"empty"});
  expect_malformed("1", {"a number alone", "opencl:1", "name=1"});
  expect_malformed("5", {"a number alone"});
  expect_malformed("-1", {"a number alone"});
  expect_malformed(":1", {"nothing before ':'"});
  expect_malformed(":", {"nothing before ':'"});
  expect_malformed("opencl:", {"nothing after 'opencl:'"});
  expect_malformed("cuda:", {"nothing after 'cuda:'"});
  expect_malformed("opencl:1:2", {"'1:2' is not a device index"});
  expect_malformed("opencl:-1", {"'-1' is not a device index"});
  expect_malformed("opencl:+1", {"'+1' is not a device index"});
  expect_malformed("name=", {"'name=' needs part of a device name"});
  expect_malformed("opencl:name=", {"'name=' needs part of a device name"});
  // The same from AXLE_DEVICE (never a device whose name happens to contain a digit)
  // and from the config.
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  {
    ScopedEnv d("AXLE_DEVICE", "1");
    AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::InvalidArgument, {"AXLE_DEVICE=1", "a number alone"});
  }
  {
    ScopedEnv d("AXLE_DEVICE", ":1");
    AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::InvalidArgument, {"AXLE_DEVICE=:1", "nothing before ':'"});
  }
  const std::string cfg = tmp.write("c.toml", "device = \"opencl:\"\nfallback = [\"cpu\"]\n");
  ScopedEnv c("AXLE_CONFIG", cfg);
  AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::InvalidArgument, {cfg, "'opencl:'", "nothing after"});
}

// A control character (from the API or a config string such as "opencl\u0000:0") makes
// the spec malformed, and messages show it escaped: a NUL once cut what() short.
TEST(DeviceSpec, ControlCharactersAreMalformedAndShownEscaped) {
  const std::string nul("opencl\0:0", 9);
  for (const std::string& spec : {nul, std::string("opencl:\x1b[2J"), std::string("cpu\x7f")}) {
    try {
      (void)axle::select_device(spec);
      ADD_FAILURE() << "accepted a spec with a control character";
    } catch (const axle::InvalidArgument& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("control character"), std::string::npos) << m;
      for (char c : m) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f) << m;
    }
  }
  AXLE_EXPECT_THROW_MSG(axle::select_device(nul), axle::InvalidArgument,
                        {"device 'opencl\\x00:0'", "'opencl\\x00:0' is not a device spec"});
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  const std::string cfg = tmp.write("c.toml", "device = \"opencl\\u0000:0\"\n");
  ScopedEnv c("AXLE_CONFIG", cfg);
  AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::InvalidArgument, {cfg, "'opencl\\x00:0'", "control character"});
}

TEST(DeviceSpec, EveryReadmeForm) {
  // Device specs: cuda, cuda:0, opencl, opencl:1, opencl:cpu, opencl:gpu, gpu, cpu, or a
  // case-insensitive substring of the device name (plus name=NAME and opencl:NAME).
  if (!cuda_usable()) {
    expect_unavailable("cuda", {"device 'cuda' cannot serve", "backend 'cuda'"});
    expect_unavailable("cuda:0", {"device 'cuda:0' cannot serve", "backend 'cuda'"});
  } else {
    EXPECT_EQ(axle::select_device("cuda").backend(), "cuda");
    EXPECT_EQ(axle::select_device("cuda:0").id(), "cuda:0");
  }
  const auto cl = axle::devices("opencl");
  if (cl.empty()) GTEST_SKIP() << "no OpenCL device";
  EXPECT_EQ(axle::select_device("opencl").backend(), "opencl");
  EXPECT_EQ(axle::select_device("opencl:0"), cl[0]);
  if (cl.size() > 1)
    EXPECT_EQ(axle::select_device("opencl:1"), cl[1]);
  else
    expect_unavailable("opencl:1", {"'opencl:1'", "opencl has 1 device(s), no index 1"});
  expect_unavailable("opencl:99999999999", {"no index 99999999999"});
  auto first_of = [&](const std::vector<axle::Device>& ds, axle::DeviceType t) -> const axle::Device* {
    for (const auto& d : ds)
      if (d.info().type == t) return &d;
    return nullptr;
  };
  const auto all = axle::devices();
  for (const auto& [word, type] :
       {std::pair<const char*, axle::DeviceType>{"cpu", axle::DeviceType::CPU}, {"gpu", axle::DeviceType::GPU}}) {
    const std::string w = word;
    if (const axle::Device* d = first_of(cl, type))
      EXPECT_EQ(axle::select_device("opencl:" + w), *d);
    else
      expect_unavailable("opencl:" + w, {"no " + w + " device on opencl"});
    if (const axle::Device* d = first_of(all, type))
      EXPECT_EQ(axle::select_device(w), *d);
    else
      expect_unavailable(w, {"no " + w + " device"});
  }
  // Name substrings: bare, after the backend, and with name=, in any case.
  const std::string name = cl[0].name();
  std::string upper = name.substr(0, std::min<std::size_t>(name.size(), 8));
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_NE(axle::select_device(upper).name().find(name.substr(0, upper.size())), std::string::npos);
  EXPECT_EQ(axle::select_device("opencl:" + upper).backend(), "opencl");
  EXPECT_EQ(axle::select_device("name=" + upper).name(), axle::select_device(upper).name());
  EXPECT_EQ(axle::select_device("opencl:name=" + upper).backend(), "opencl");
  // After a backend prefix the rest is the name, ':' included.
  expect_unavailable("opencl:abc:def", {"no device on opencl whose name contains 'abc:def'"});
  expect_unavailable("name=424242", {"no device whose name contains '424242'"});
  // name= matches what would otherwise be a number: the digits of a device name.
  const auto digit =
      std::find_if(name.begin(), name.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); });
  if (digit != name.end()) {
    const std::string digits(
        digit, std::find_if(digit, name.end(), [](char ch) { return !std::isdigit(static_cast<unsigned char>(ch)); }));
    EXPECT_NE(axle::select_device("name=" + digits).name().find(digits), std::string::npos);
    expect_malformed(digits, {"a number alone"});
  }
  // An unknown prefix: no backend of that name, and no device named so.
  expect_unavailable("vulkan:0", {"unknown backend 'vulkan'", "whose name contains 'vulkan:0'"});
}

// Two OpenCL devices (PoCL with POCL_DEVICES="pthread pthread"), in a process of its own.
TEST(DeviceSpec, TwoOpenCLDevicesByIndex) {
  if (axle::devices("opencl").empty()) GTEST_SKIP() << "no OpenCL device";
  int status = 0;
  const std::string out =
      axle_test::rerun_self("POCL_DEVICES='pthread pthread' AXLE_TEST_CHILD=two_devices", "DeviceSpecChild.TwoDevices", status);
  if (out.find("child: fewer than two OpenCL devices") != std::string::npos)
    GTEST_SKIP() << "the OpenCL platform here does not honour POCL_DEVICES";
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(axle_test::contains_all(out, {"[  PASSED  ] 1 test"})) << out;
  EXPECT_EQ(out.find("SKIPPED"), std::string::npos) << out;
}

TEST(DeviceSpecChild, TwoDevices) {
  const char* child = std::getenv("AXLE_TEST_CHILD");
  if (!child || std::string(child) != "two_devices") GTEST_SKIP() << "run by DeviceSpec.TwoOpenCLDevicesByIndex";
  const auto cl = axle::devices("opencl");
  if (cl.size() < 2) {
    std::printf("child: fewer than two OpenCL devices\n");
    GTEST_SKIP();
  }
  EXPECT_EQ(axle::select_device("opencl:1"), cl[1]);
  EXPECT_EQ(axle::select_device("opencl:0"), cl[0]);
  expect_malformed("1", {"a number alone"});
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  ScopedEnv d("AXLE_DEVICE", "opencl:1");
  EXPECT_EQ(axle::default_device().id(), "opencl:1");
  ScopedEnv d1("AXLE_DEVICE", "1");
  EXPECT_THROW(axle::default_device(), axle::InvalidArgument);
}
