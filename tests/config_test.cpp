// Configuration: the TOML file, its errors, environment precedence, fallback device
// lists and log levels.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "axle/axle.hpp"
#include "log_levels.hpp"
#include "test_util.hpp"

using axle_test::ScopedEnv;
using axle_test::TempDir;

namespace {

// Expects parse_config(text) to throw ConfigError at `line` naming `key`.
void expect_config_error(const std::string& text, int line, const std::string& key,
                         std::initializer_list<std::string> parts) {
  try {
    axle::parse_config(text, "/etc/test/axle.toml");
    ADD_FAILURE() << "parsed without error:\n" << text;
  } catch (const axle::ConfigError& e) {
    EXPECT_EQ(e.file(), "/etc/test/axle.toml") << text;
    EXPECT_EQ(e.line(), line) << e.what();
    EXPECT_EQ(e.key(), key) << e.what();
    EXPECT_TRUE(axle_test::contains_all(e.what(), parts));
    EXPECT_TRUE(axle_test::contains_all(e.what(), {"/etc/test/axle.toml:" + std::to_string(line)}));
  }
}

}  // namespace

TEST(Config, ParsesEveryKey) {
  const std::string text =
      "# Axle configuration\n"
      "device = \"opencl:1\"\n"
      "fallback = [\"opencl:gpu\", \"opencl:cpu\"]\n"
      "log = \"jit=debug,mem=trace\"\n"
      "cache_dir = \"/var/cache/axle\"\n"
      "tuning_file = \"/home/u/tuning.json\"\n";
  const axle::Config c = axle::parse_config(text, "mem.toml");
  EXPECT_EQ(c.path, "mem.toml");
  EXPECT_EQ(c.device, "opencl:1");
  EXPECT_EQ(c.fallback, (std::vector<std::string>{"opencl:gpu", "opencl:cpu"}));
  EXPECT_EQ(c.log, "jit=debug,mem=trace");
  EXPECT_EQ(c.cache_dir, "/var/cache/axle");
  EXPECT_EQ(c.tuning_file, "/home/u/tuning.json");

  const axle::Config empty = axle::parse_config("", "empty.toml");
  EXPECT_TRUE(empty.device.empty());
  EXPECT_TRUE(empty.fallback.empty());
  EXPECT_TRUE(empty.log.empty());
  EXPECT_TRUE(empty.cache_dir.empty());
  EXPECT_TRUE(empty.tuning_file.empty());
  EXPECT_TRUE(axle::parse_config("fallback = []\n", "f.toml").fallback.empty());

  TempDir tmp;
  const std::string path = tmp.write("axle.toml", text);
  const axle::Config f = axle::load_config(path);
  EXPECT_EQ(f.path, path);
  EXPECT_EQ(f.device, "opencl:1");
  EXPECT_EQ(f.fallback.size(), 2u);
  EXPECT_EQ(f.tuning_file, "/home/u/tuning.json");
}

TEST(Config, MalformedTomlNamesFileAndLine) {
  expect_config_error("device = \"opencl:0\"\nlog = \n", 2, "", {"malformed TOML"});
  expect_config_error("# comment\n\ndevice = \"unterminated\n", 3, "", {"malformed TOML"});
  expect_config_error("device = \"a\"\ndevice = \"b\"\n", 2, "", {"malformed TOML"});
  TempDir tmp;
  const std::string path = tmp.write("bad.toml", "fallback = [\"a\",\n");
  try {
    axle::load_config(path);
    ADD_FAILURE() << "malformed file loaded";
  } catch (const axle::ConfigError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_GE(e.line(), 1);
    EXPECT_TRUE(axle_test::contains_all(e.what(), {path + ":", "malformed TOML"}));
  }
}

TEST(Config, UnknownKeyNamesKeyAndLine) {
  expect_config_error("device = \"opencl:0\"\n\ncolour = \"blue\"\n", 3, "colour",
                      {"unknown key 'colour'", "device, fallback, log, cache_dir, tuning_file"});
  expect_config_error("log = \"info\"\n[device]\nname = \"x\"\n", 2, "device", {"'device' must be a string"});
  expect_config_error("[opencl]\nindex = 1\n", 1, "opencl", {"unknown key 'opencl'"});
}

TEST(Config, WrongTypesNameTheKey) {
  expect_config_error("device = 3\n", 1, "device", {"'device' must be a string"});
  expect_config_error("\nfallback = \"x\"\n", 2, "fallback", {"'fallback' must be an array"});
  expect_config_error("fallback = [\"opencl:0\", 1]\n", 1, "fallback", {"'fallback' must be a string"});
  expect_config_error("log = true\n", 1, "log", {"'log' must be a string"});
  expect_config_error("cache_dir = 1.5\n", 1, "cache_dir", {"'cache_dir' must be a string"});
  expect_config_error("tuning_file = [\"a\"]\n", 1, "tuning_file", {"'tuning_file' must be a string"});
}

TEST(Config, ActiveConfigFromEnvironmentAndFiles) {
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  EXPECT_EQ(axle::active_config().path, "");

  const std::string path = tmp.write("named.toml", "device = \"opencl:0\"\n");
  {
    ScopedEnv c("AXLE_CONFIG", path);
    EXPECT_EQ(axle::active_config().path, path);
    EXPECT_EQ(axle::active_config().device, "opencl:0");
  }
  // A named file that does not exist is an error on every use, never ignored.
  const std::string missing = tmp.file("missing.toml");
  {
    ScopedEnv no_cache("AXLE_CACHE_DIR", std::nullopt);
    ScopedEnv c("AXLE_CONFIG", missing);
    for (int i = 0; i < 2; ++i) {
      try {
        axle::active_config();
        ADD_FAILURE() << "a missing AXLE_CONFIG file was accepted";
      } catch (const axle::ConfigError& e) {
        EXPECT_EQ(e.file(), missing);
        EXPECT_TRUE(axle_test::contains_all(e.what(), {missing, "cannot read"}));
      }
    }
    AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::ConfigError, {missing});
    AXLE_EXPECT_THROW_MSG(axle::cache_dir(), axle::ConfigError, {missing});
  }
  // A malformed active config reports its line every time.
  const std::string bad = tmp.write("bad.toml", "device = \"opencl:0\"\nspeed = 3\n");
  {
    ScopedEnv c("AXLE_CONFIG", bad);
    for (int i = 0; i < 2; ++i) {
      try {
        axle::active_config();
        ADD_FAILURE() << "a bad AXLE_CONFIG file was accepted";
      } catch (const axle::ConfigError& e) {
        EXPECT_EQ(e.file(), bad);
        EXPECT_EQ(e.line(), 2);
        EXPECT_EQ(e.key(), "speed");
        EXPECT_TRUE(axle_test::contains_all(e.what(), {bad + ":2", "speed"}));
      }
    }
  }
  // $XDG_CONFIG_HOME/axle/axle.toml when AXLE_CONFIG is unset.
  ::mkdir((tmp.path() + "/axle").c_str(), 0755);
  const std::string xdg = tmp.write("axle/axle.toml", "cache_dir = \"/from/xdg\"\n");
  axle::reset_config_for_testing();
  EXPECT_EQ(axle::active_config().path, xdg);
  EXPECT_EQ(axle::active_config().cache_dir, "/from/xdg");
  // ./axle.toml beats the XDG file.
  {
    TempDir cwd;
    cwd.write("axle.toml", "cache_dir = \"/from/cwd\"\n");
    char old[4096];
    ASSERT_NE(::getcwd(old, sizeof(old)), nullptr);
    ASSERT_EQ(::chdir(cwd.path().c_str()), 0);
    axle::reset_config_for_testing();
    const std::string got = axle::active_config().cache_dir;
    ASSERT_EQ(::chdir(old), 0);
    axle::reset_config_for_testing();
    EXPECT_EQ(got, "/from/cwd");
  }
}

TEST(Config, CacheDirAndTuningFilePrecedence) {
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  ScopedEnv no_cache("AXLE_CACHE_DIR", std::nullopt);
  ScopedEnv no_tuning("AXLE_TUNING_FILE", std::nullopt);
  ScopedEnv no_xdg_cache("XDG_CACHE_HOME", std::nullopt);
  // Last resort: ~/.cache/axle
  EXPECT_EQ(axle::cache_dir(), tmp.path() + "/.cache/axle");
  EXPECT_EQ(axle::tuning_file(), tmp.path() + "/.cache/axle/tuning.json");
  {
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg/cache");
    EXPECT_EQ(axle::cache_dir(), "/xdg/cache/axle");
    EXPECT_EQ(axle::tuning_file(), "/xdg/cache/axle/tuning.json");
    const std::string cfg = tmp.write("c.toml", "cache_dir = \"/cfg/cache\"\ntuning_file = \"/cfg/tune.json\"\n");
    ScopedEnv c("AXLE_CONFIG", cfg);
    EXPECT_EQ(axle::cache_dir(), "/cfg/cache");  // config beats XDG
    EXPECT_EQ(axle::tuning_file(), "/cfg/tune.json");
    {
      ScopedEnv env("AXLE_CACHE_DIR", "/env/cache");  // environment beats config
      EXPECT_EQ(axle::cache_dir(), "/env/cache");
      EXPECT_EQ(axle::tuning_file(), "/cfg/tune.json");
      ScopedEnv tenv("AXLE_TUNING_FILE", "/env/tune.json");
      EXPECT_EQ(axle::tuning_file(), "/env/tune.json");
    }
    const std::string cfg2 = tmp.write("c2.toml", "cache_dir = \"/cfg/cache\"\n");
    ScopedEnv c2("AXLE_CONFIG", cfg2);
    EXPECT_EQ(axle::tuning_file(), "/cfg/cache/tuning.json");  // follows the cache dir
    ScopedEnv env("AXLE_CACHE_DIR", "/env/cache");
    EXPECT_EQ(axle::tuning_file(), "/env/cache/tuning.json");
  }
}

TEST(Config, FallbackListPicksAWorkingDevice) {
  const auto all = axle::devices();
  if (all.empty()) GTEST_SKIP() << "no device available";
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  const std::string good = all.back().id();
  const std::string cfg = tmp.write(
      "fb.toml", "device = \"cuda:42\"\nfallback = [\"vulkan:0\", \"opencl:99\", \"" + good + "\", \"opencl:0\"]\n");
  {
    ScopedEnv c("AXLE_CONFIG", cfg);
    EXPECT_EQ(axle::default_device().id(), good);
  }
  const std::string none = tmp.write("none.toml", "device = \"cuda:42\"\nfallback = [\"vulkan:0\", \"opencl:99\"]\n");
  {
    ScopedEnv c("AXLE_CONFIG", none);
    try {
      axle::default_device();
      ADD_FAILURE() << "no fallback can serve, yet a device was returned";
    } catch (const axle::DeviceUnavailable& e) {
      // Every attempt with its reason, and every backend.
      EXPECT_TRUE(axle_test::contains_all(e.what(), {none, "cuda:42:", "vulkan:0:", "unknown backend 'vulkan'",
                                                     "opencl:99:"}));
      for (const auto& b : axle::backends()) EXPECT_NE(std::string(e.what()).find(b.name + ":"), std::string::npos);
    }
    // AXLE_DEVICE still beats the config.
    ScopedEnv d("AXLE_DEVICE", good);
    EXPECT_EQ(axle::default_device().id(), good);
  }
  // A config that names a working device uses it without looking at the fallback.
  const std::string direct = tmp.write("direct.toml", "device = \"" + good + "\"\nfallback = [\"vulkan:0\"]\n");
  ScopedEnv c("AXLE_CONFIG", direct);
  EXPECT_EQ(axle::default_device().id(), good);
}

TEST(Config, LogLevels) {
  axle::set_log_levels("jit=debug,mem=trace");
  EXPECT_EQ(axle::detail::log_level("jit"), "debug");
  EXPECT_EQ(axle::detail::log_level("mem"), "trace");
  axle::set_log_levels("axle.jit=info,rt=warn");
  EXPECT_EQ(axle::detail::log_level("jit"), "info");
  EXPECT_EQ(axle::detail::log_level("rt"), "warn");
  axle::set_log_levels("debug");
  for (const char* sub : {"rt", "jit", "mem", "opencl", "cuda", "blas"})
    EXPECT_EQ(axle::detail::log_level(sub), "debug") << sub;
  axle::set_log_levels("");
  for (const char* sub : {"rt", "jit", "mem", "opencl", "cuda", "blas"})
    EXPECT_EQ(axle::detail::log_level(sub), "off") << sub;
  AXLE_EXPECT_THROW_MSG(axle::set_log_levels("bogus"), axle::ConfigError, {"'bogus'", "trace, debug"});
  AXLE_EXPECT_THROW_MSG(axle::set_log_levels("jit=loud"), axle::ConfigError, {"'loud'"});
  AXLE_EXPECT_THROW_MSG(axle::set_log_levels("jit=debug,mem=nope"), axle::ConfigError, {"'nope'"});

  const auto all = axle::devices();
  if (all.empty()) GTEST_SKIP() << "no device: cannot observe log output";
  const axle::Device& dev = all.front();
  auto build_log = [&](const std::string& spec) {
    if (!spec.empty()) axle::set_log_levels(spec);
    ::testing::internal::CaptureStderr();
    axle::BuildOptions o;
    o.disk_cache = false;
    dev.build(axle::Source::portable("// " + axle_test::unique_token() +
                                         "\nAXLE_KERNEL void k(AXLE_GLOBAL int* o) { o[0] = 1; }\n",
                                     "log_probe.cl"),
              o);
    return ::testing::internal::GetCapturedStderr();
  };
  const std::string on = build_log("jit=debug");
  EXPECT_TRUE(axle_test::contains_all(on, {"axle.jit", "debug", "log_probe.cl"}));
  const std::string other = build_log("mem=trace");
  EXPECT_EQ(other.find("axle.jit"), std::string::npos) << other;
  const std::string off = build_log("off");
  EXPECT_EQ(off, "");
  // A rejected spec leaves the previous levels in place.
  EXPECT_THROW(axle::set_log_levels("jit=debug,bogus"), axle::ConfigError);
  EXPECT_EQ(build_log(""), "");
  axle::set_log_levels("jit=debug");
  EXPECT_THROW(axle::set_log_levels("off,bogus"), axle::ConfigError);
  EXPECT_NE(build_log("").find("axle.jit"), std::string::npos);
  axle::set_log_levels("off");
}

// Found by fuzz/fuzz_config: a multi-line string keeps a line break that follows the
// one TOML trims after the opening quotes, and written back as a basic string it reads
// the same.
TEST(Config, MultiLineStringsKeepTheirLineBreaks) {
  const axle::Config c = axle::parse_config("device =\"\"\"\n\nline\"\"\"\n", "m.toml");
  EXPECT_EQ(c.device, "\nline");
  EXPECT_EQ(axle::parse_config("device = \"\\nline\"\n", "m.toml").device, c.device);
}
