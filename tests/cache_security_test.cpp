// The kernel cache trusts only what this user alone can write: per-user locations
// (never a shared one such as /tmp), directories and entries of this user's that no one
// else can write, no symbolic links followed, temporaries created exclusively, and a
// corrupt entry removed only while it is still the file that was read.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/cache.hpp"
#include "disk_cache.hpp"
#include "test_util.hpp"

using axle_test::ScopedEnv;
using axle_test::TempDir;

namespace {

const std::string kKey(64, 'a');

std::vector<std::uint8_t> payload(const std::string& text) { return {text.begin(), text.end()}; }

void store(const std::string& dir, const std::string& text, const std::string& key = kKey) {
  axle::detail::disk_cache_store(dir, axle::detail::CacheMeta{key, "opencl", "test device", "t.cl"}, payload(text));
}

std::string loaded(const std::string& dir, const std::string& key = kKey) {
  auto hit = axle::detail::disk_cache_load(dir, key);
  return hit ? std::string(hit->payload.begin(), hit->payload.end()) : std::string("<none>");
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Everything the jit logger writes to stderr while `fn` runs (warnings on).
template <typename Fn>
std::string jit_warnings(Fn fn) {
  axle::set_log_levels("jit=warn");
  ::testing::internal::CaptureStderr();
  fn();
  std::string out = ::testing::internal::GetCapturedStderr();
  axle::set_log_levels("off");
  return out;
}

// Runs `fn` in a child process as user `nobody` (whose home, /nonexistent, is not a
// usable directory); the child exits 0 when every check passed, else prints why.
struct ChildResult {
  int status = -1;
  std::string out;
};
template <typename Fn>
ChildResult run_as_nobody(Fn fn) {
  int pipefd[2];
  ChildResult r;
  if (::pipe(pipefd) != 0) return r;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
      std::printf("cannot become nobody\n");
      std::fflush(stdout);
      ::_exit(3);
    }
    const int rc = fn();
    std::fflush(stdout);
    ::_exit(rc);
  }
  ::close(pipefd[1]);
  char buf[512];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<std::size_t>(n));
  ::close(pipefd[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

bool nobody_has_no_home() {
  passwd* pw = ::getpwuid(65534);
  struct stat st {};
  return pw && pw->pw_dir && ::stat(pw->pw_dir, &st) != 0;
}

#define CHILD_CHECK(cond)                                            \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::printf("check failed at line %d: %s\n", __LINE__, #cond); \
      return 1;                                                      \
    }                                                                \
  } while (0)

}  // namespace

TEST(CacheLocation, NoHomeMeansNoCacheAndNoSharedConfig) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as user nobody";
  if (!nobody_has_no_home()) GTEST_SKIP() << "user nobody has a home directory here";
  ScopedEnv home("HOME", std::nullopt), xdg_cache("XDG_CACHE_HOME", std::nullopt),
      xdg_config("XDG_CONFIG_HOME", std::nullopt), cache("AXLE_CACHE_DIR", std::nullopt),
      config("AXLE_CONFIG", std::nullopt), dev("AXLE_DEVICE", std::nullopt), log("AXLE_LOG", std::nullopt);
  // The old fallbacks, /tmp/.config/axle/axle.toml and /tmp/.cache/axle, must not be
  // used. Plant a config there when no one else has that directory.
  const bool planted = ::mkdir("/tmp/.config", 0755) == 0;
  if (planted) {
    ::mkdir("/tmp/.config/axle", 0755);
    std::ofstream("/tmp/.config/axle/axle.toml") << "device = \"planted-by-another-user\"\n";
  }
  // A config with cache_dir = "~/kc", readable by nobody.
  TempDir tmp;
  ::chmod(tmp.path().c_str(), 0755);
  const std::string tilde_cfg = tmp.write("tilde.toml", "cache_dir = \"~/kc\"\n");
  ::chmod(tilde_cfg.c_str(), 0644);
  const ChildResult r = run_as_nobody([&] {
    if (::chdir("/") != 0) return 2;
    axle::reset_config_for_testing();
    CHILD_CHECK(axle::active_config().path.empty());
    CHILD_CHECK(axle::active_config().device.empty());
    CHILD_CHECK(axle::cache_dir().empty());
    CHILD_CHECK(axle::tuning_file().empty());
    CHILD_CHECK(axle::no_cache_dir_reason().find("HOME is unset") != std::string::npos);
    CHILD_CHECK(axle::cache_dir_problem().find("no kernel cache directory") != std::string::npos);
    // Storing with no directory writes nothing anywhere.
    store(axle::cache_dir(), "x");
    struct stat st {};
    CHILD_CHECK(::stat("/tmp/.cache/axle", &st) != 0);
    // "~/kc" with no home is no cache directory, not a directory literally named "~".
    ::setenv("AXLE_CONFIG", tilde_cfg.c_str(), 1);
    axle::reset_config_for_testing();
    CHILD_CHECK(axle::active_config().cache_dir == "~/kc");
    CHILD_CHECK(axle::cache_dir().empty());
    CHILD_CHECK(axle::no_cache_dir_reason().find("'~/kc'") != std::string::npos);
    CHILD_CHECK(axle::no_cache_dir_reason().find(tilde_cfg) != std::string::npos);
    return 0;
  });
  if (planted) {
    ::unlink("/tmp/.config/axle/axle.toml");
    ::rmdir("/tmp/.config/axle");
    ::rmdir("/tmp/.config");
  }
  EXPECT_EQ(r.status, 0) << r.out;
  struct stat st {};
  EXPECT_NE(::stat((tmp.path() + "/~").c_str(), &st), 0) << "a directory named '~' was created";
}

TEST(CacheLocation, PasswordDatabaseHomeWhenHomeIsUnset) {
  passwd* pw = ::getpwuid(::geteuid());
  struct stat st {};
  if (!pw || !pw->pw_dir || ::stat(pw->pw_dir, &st) != 0 || st.st_uid != ::geteuid() ||
      std::string(pw->pw_dir).rfind("/tmp", 0) == 0)
    GTEST_SKIP() << "this user has no usable home directory in the password database";
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  ScopedEnv home("HOME", std::nullopt), xdg_cache("XDG_CACHE_HOME", std::nullopt),
      cache("AXLE_CACHE_DIR", std::nullopt);
  EXPECT_EQ(axle::cache_dir(), std::string(pw->pw_dir) + "/.cache/axle");  // only the name; nothing is created
  EXPECT_EQ(axle::no_cache_dir_reason(), "");
}

TEST(CacheLocation, TildeInConfigIsTheHomeDirectory) {
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());  // HOME = tmp
  ScopedEnv cache("AXLE_CACHE_DIR", std::nullopt), tuning("AXLE_TUNING_FILE", std::nullopt);
  const std::string cfg = tmp.write("c.toml", "cache_dir = \"~/kc\"\ntuning_file = \"~/t.json\"\n");
  ScopedEnv c("AXLE_CONFIG", cfg);
  EXPECT_EQ(axle::cache_dir(), tmp.path() + "/kc");
  EXPECT_EQ(axle::tuning_file(), tmp.path() + "/t.json");
  store(axle::cache_dir(), "payload");
  EXPECT_EQ(loaded(tmp.path() + "/kc"), "payload");
  struct stat st {};
  EXPECT_NE(::stat("~", &st), 0) << "a directory literally named '~' was created";
}

TEST(CacheSecurity, CreatesPrivateDirectoriesAndFiles) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/a/b";
  store(dir, "payload");
  EXPECT_EQ(mode_of(tmp.path() + "/a"), 0700u);
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_EQ(mode_of(axle::detail::disk_cache_path(dir, kKey)), 0600u);
  EXPECT_EQ(loaded(dir), "payload");
  EXPECT_EQ(axle::cache_dir_problem(dir), "");
}

TEST(CacheSecurity, DirectoryWritableByGroupOrOthersIsRefused) {
  for (const mode_t mode : {mode_t(0770), mode_t(0702), mode_t(0777)}) {
    TempDir tmp;
    const std::string dir = tmp.path() + "/c";
    store(dir, "trusted");
    ASSERT_EQ(loaded(dir), "trusted");
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    const std::string warned = jit_warnings([&] { EXPECT_EQ(loaded(dir), "<none>") << std::oct << mode; });
    EXPECT_TRUE(axle_test::contains_all(warned, {"axle.jit", dir, "writable by group or others"}));
    EXPECT_TRUE(axle_test::contains_all(axle::cache_dir_problem(dir), {dir, "writable by group or others"}));
    // Nothing is written there, and it is not listed or cleared.
    store(dir, "replacement", std::string(64, 'b'));
    EXPECT_EQ(axle_test::list_dir(dir), std::vector<std::string>{kKey + ".axlebin"});
    EXPECT_TRUE(axle::cache_entries(dir).empty());
    EXPECT_EQ(axle::clear_cache(dir), 0u);
    ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
    EXPECT_EQ(loaded(dir), "trusted");
  }
}

TEST(CacheSecurity, EntryWritableByOthersOrALinkIsRefused) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  store(dir, "trusted");
  const std::string entry = axle::detail::disk_cache_path(dir, kKey);
  ASSERT_EQ(::chmod(entry.c_str(), 0620), 0);
  const std::string warned = jit_warnings([&] { EXPECT_EQ(loaded(dir), "<none>"); });
  EXPECT_TRUE(axle_test::contains_all(warned, {entry, "writable by group or others"}));
  EXPECT_EQ(mode_of(entry), 0620u) << "a refused entry is not removed";
  ASSERT_EQ(::chmod(entry.c_str(), 0606), 0);
  EXPECT_EQ(loaded(dir), "<none>");
  ASSERT_EQ(::chmod(entry.c_str(), 0600), 0);
  EXPECT_EQ(loaded(dir), "trusted");
  // A symbolic link to a valid entry elsewhere is not followed.
  TempDir other;
  store(other.path(), "planted", std::string(64, 'c'));
  const std::string link = axle::detail::disk_cache_path(dir, std::string(64, 'c'));
  ASSERT_EQ(::symlink(axle::detail::disk_cache_path(other.path(), std::string(64, 'c')).c_str(), link.c_str()), 0);
  const std::string link_warned = jit_warnings([&] { EXPECT_EQ(loaded(dir, std::string(64, 'c')), "<none>"); });
  EXPECT_TRUE(axle_test::contains_all(link_warned, {link, "symbolic link"}));
  for (const auto& e : axle::cache_entries(dir))
    if (e.key == std::string(64, 'c')) EXPECT_FALSE(e.valid) << "a symbolic link was listed as a valid entry";
}

TEST(CacheSecurity, DirectoryOrEntryOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  store(dir, "trusted");
  const std::string entry = axle::detail::disk_cache_path(dir, kKey);
  ASSERT_EQ(::chown(entry.c_str(), 4242, static_cast<gid_t>(-1)), 0);
  const std::string warned = jit_warnings([&] { EXPECT_EQ(loaded(dir), "<none>"); });
  EXPECT_TRUE(axle_test::contains_all(warned, {entry, "owned by uid 4242"}));
  ASSERT_EQ(::chown(entry.c_str(), 0, static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(loaded(dir), "trusted");
  ASSERT_EQ(::chown(dir.c_str(), 4242, static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(loaded(dir), "<none>");
  EXPECT_TRUE(axle_test::contains_all(axle::cache_dir_problem(dir), {dir, "owned by uid 4242"}));
  store(dir, "replacement", std::string(64, 'b'));
  EXPECT_EQ(axle_test::list_dir(dir).size(), 1u) << "an entry was written into another user's directory";
  ASSERT_EQ(::chown(dir.c_str(), 0, static_cast<gid_t>(-1)), 0);
}

TEST(CacheSecurity, PlantedSymlinkTemporaryIsNotFollowed) {
  TempDir tmp, victim_dir;
  const std::string dir = tmp.path() + "/c";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string victim = victim_dir.write("victim.txt", "precious");
  // Links at every temporary name a predictable writer would use.
  const std::string entry = axle::detail::disk_cache_path(dir, kKey);
  for (int i = 0; i < 256; ++i) {
    const std::string tmp_name = entry + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(i);
    ASSERT_EQ(::symlink(victim.c_str(), tmp_name.c_str()), 0);
  }
  for (int i = 0; i < 4; ++i) store(dir, "payload " + std::to_string(i));
  EXPECT_EQ(axle_test::read_file(victim), "precious") << "a cache write went through a planted symbolic link";
  EXPECT_EQ(loaded(dir), "payload 3");
  struct stat st {};
  ASSERT_EQ(::lstat(entry.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST(CacheSecurity, CorruptEntryIsRemovedOnlyWhileItIsTheFileRead) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  store(dir, "first");
  auto first = axle::detail::disk_cache_load(dir, kKey);
  ASSERT_TRUE(first);
  // Another process renames a new entry into place before this one removes "its" bad one.
  store(dir, "second");
  EXPECT_FALSE(axle::detail::disk_cache_discard(dir, kKey, *first, "test"));
  EXPECT_EQ(loaded(dir), "second");
  auto second = axle::detail::disk_cache_load(dir, kKey);
  ASSERT_TRUE(second);
  EXPECT_TRUE(axle::detail::disk_cache_discard(dir, kKey, *second, "test"));
  EXPECT_EQ(loaded(dir), "<none>");
  // A corrupt entry read by the loader is still removed.
  store(dir, "third");
  const std::string entry = axle::detail::disk_cache_path(dir, kKey);
  std::string data = axle_test::read_file(entry);
  data.back() ^= 0x5a;
  {
    std::ofstream f(entry, std::ios::binary | std::ios::trunc);
    f << data;
  }
  EXPECT_EQ(loaded(dir), "<none>");
  EXPECT_TRUE(axle_test::list_dir(dir).empty());
}

TEST(CacheSecurity, LeftoverTemporariesAreCleaned) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  store(dir, "x");
  const std::string old_tmp = dir + "/" + std::string(64, 'd') + ".axlebin.tmp.1.0.0";
  const std::string new_tmp = dir + "/" + std::string(64, 'e') + ".axlebin.tmp.2.0.0";
  std::ofstream(old_tmp) << "abandoned";
  std::ofstream(new_tmp) << "being written";
  const timespec times[2] = {{std::time(nullptr) - 3600, 0}, {std::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, old_tmp.c_str(), times, 0), 0);
  store(dir, "y", std::string(64, 'f'));  // a store removes abandoned temporaries only
  struct stat st {};
  EXPECT_NE(::stat(old_tmp.c_str(), &st), 0) << "an hour-old temporary was kept";
  EXPECT_EQ(::stat(new_tmp.c_str(), &st), 0) << "a fresh temporary (a writer at work) was removed";
  // `cache clear` removes every entry and every temporary.
  EXPECT_EQ(axle::clear_cache(dir), 3u);
  EXPECT_TRUE(axle_test::list_dir(dir).empty());
}

class CacheSecurityDeviceTest : public ::testing::TestWithParam<axle::Device> {};
INSTANTIATE_TEST_SUITE_P(Devices, CacheSecurityDeviceTest, ::testing::ValuesIn(axle::devices()),
                         axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CacheSecurityDeviceTest);

TEST_P(CacheSecurityDeviceTest, RefusedDirectoryBuildsInMemory) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  ScopedEnv env("AXLE_CACHE_DIR", dir);
  const std::string src =
      "// " + axle_test::unique_token() + "\nAXLE_KERNEL void k(AXLE_GLOBAL int* o) { o[AXLE_GLOBAL_ID(0)] = 7; }\n";
  axle::Program p = GetParam().build(axle::Source::portable(src, "refused.cl"));
  EXPECT_FALSE(p.from_disk_cache());
  axle::Stream s = GetParam().create_stream();
  axle::Buffer b = GetParam().alloc<int>(1);
  s.launch(p.kernel("k"), axle::Range{1}, axle::Range{}, b.view<int>());
  std::vector<int> out(1);
  s.copy(b, out);
  s.synchronize();
  EXPECT_EQ(out[0], 7);
  EXPECT_TRUE(axle_test::list_dir(dir).empty()) << "an entry was written into a world-writable directory";
}
