// Helpers shared by the runtime tests: environment and temp-dir scopes, exception
// checks that look at both the type and the message, and per-device test naming.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "axle/axle.hpp"

namespace axle_test {

/// Element conversions for GEMM tests: float to a storage type and back.
template <typename T>
T from_float(float f);
template <>
inline float from_float<float>(float f) { return f; }
template <>
inline axle::half_t from_float<axle::half_t>(float f) { return axle::to_half(f); }
template <>
inline axle::bfloat16_t from_float<axle::bfloat16_t>(float f) { return axle::to_bfloat16(f); }
inline float to_f(float f) { return f; }
inline float to_f(axle::half_t h) { return axle::to_float(h); }
inline float to_f(axle::bfloat16_t h) { return axle::to_float(h); }

/// Sets (or unsets, with nullopt) an environment variable for the scope and restores
/// the previous value afterwards. The active config is forgotten on both ends, since
/// it may depend on the variable.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = std::string(old);
    if (value)
      ::setenv(name_.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
    axle::reset_config_for_testing();
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
    axle::reset_config_for_testing();
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

/// Clears every variable that steers device choice and configuration, so a test
/// starts from a known state (no AXLE_DEVICE, no config file found anywhere).
class CleanConfigEnv {
 public:
  explicit CleanConfigEnv(const std::string& empty_dir)
      : device_("AXLE_DEVICE", std::nullopt),
        config_("AXLE_CONFIG", std::nullopt),
        xdg_("XDG_CONFIG_HOME", empty_dir),
        home_("HOME", empty_dir) {}

 private:
  ScopedEnv device_, config_, xdg_, home_;
};

inline void remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") remove_tree(path + "/" + n);
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents at scope end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/axle_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = buf.data();
  }
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = file(name);
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
    return p;
  }

 private:
  std::string path_;
};

inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// A token unique to this process and call, to make kernel sources that no cache
/// (Axle's or the driver's) has seen before.
inline std::string unique_token() {
  static std::atomic<unsigned> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return std::to_string(::getpid()) + "_" + std::to_string(now) + "_" + std::to_string(counter++);
}

/// Runs this test binary again as a child process, with `env` (shell assignments such
/// as "AXLE_LOG=debug X='a b'") before it and only the tests of `filter`; returns its
/// output (stdout and stderr) and sets `status` to its exit code (-1 when it did not
/// exit normally). For tests that need a fresh process: first use of the library,
/// environment read at start-up, devices opened once per process.
inline std::string rerun_self(const std::string& env, const std::string& filter, int& status) {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  status = -1;
  if (n <= 0) return "cannot find this executable";
  self[n] = '\0';
  const std::string cmd = env + " '" + std::string(self) + "' --gtest_filter='" + filter + "' 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int st = ::pclose(p);
  status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

/// "opencl_0" from "opencl:0": a valid GoogleTest parameter name.
inline std::string device_test_name(const axle::Device& d) {
  std::string s = d.id();
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

struct DeviceName {
  std::string operator()(const ::testing::TestParamInfo<axle::Device>& info) const {
    return device_test_name(info.param);
  }
};

/// Every substring must occur in `text`; returns a failure listing those that do not.
inline ::testing::AssertionResult contains_all(const std::string& text, std::initializer_list<std::string> parts) {
  std::string missing;
  for (const auto& p : parts)
    if (text.find(p) == std::string::npos) missing += " '" + p + "'";
  if (missing.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "missing" << missing << " in message:\n" << text;
}

}  // namespace axle_test

/// Runs `stmt`, which must throw exactly an exception of type `ex_type` (or a
/// subclass) whose what() contains every string of the braced list `...`.
#define AXLE_EXPECT_THROW_MSG(stmt, ex_type, ...)                                                        \
  do {                                                                                                  \
    bool axle_thrown_ = false;                                                                          \
    try {                                                                                               \
      stmt;                                                                                             \
    } catch (const ex_type& axle_e_) {                                                                  \
      axle_thrown_ = true;                                                                              \
      EXPECT_TRUE(::axle_test::contains_all(axle_e_.what(), __VA_ARGS__)) << "from: " #stmt;            \
    } catch (const std::exception& axle_e_) {                                                           \
      ADD_FAILURE() << "expected " #ex_type " from " #stmt ", got another exception: " << axle_e_.what(); \
      axle_thrown_ = true;                                                                              \
    }                                                                                                   \
    if (!axle_thrown_) ADD_FAILURE() << "expected " #ex_type " from " #stmt ", nothing was thrown";    \
  } while (0)

namespace axle {
/// GoogleTest printers: name devices and backends by id in failure messages.
inline void PrintTo(const Device& d, std::ostream* os) { *os << (d.valid() ? d.id() : std::string("<empty Device>")); }
inline void PrintTo(const BackendStatus& b, std::ostream* os) {
  *os << b.name << (b.available ? " (available)" : " (unavailable: " + b.reason + ")");
}
}  // namespace axle
