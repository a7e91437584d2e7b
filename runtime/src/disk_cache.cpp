#include "disk_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "axle/cache.hpp"
#include "axle/config.hpp"
#include "log.hpp"
#include "sha256.hpp"

namespace axle {
namespace detail {
namespace {

constexpr char kMagic[8] = {'A', 'X', 'L', 'E', 'B', 'I', 'N', '1'};
constexpr const char* kSuffix = ".axlebin";

void put_u32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& s, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
std::uint64_t get_le(const std::string& s, std::size_t pos, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= std::uint64_t(static_cast<unsigned char>(s[pos + i])) << (8 * i);
  return v;
}

constexpr const char* kTempMarker = ".axlebin.tmp.";
constexpr long kStaleTempSeconds = 600;  // a writer takes milliseconds; older ones were abandoned

bool make_dirs(const std::string& dir) {
  std::string cur;
  for (std::size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return false;
    }
    if (i < dir.size()) cur.push_back(dir[i]);
  }
  return true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool is_temp_name(const std::string& name) { return name.find(kTempMarker) != std::string::npos; }

std::string octal_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// "" when `st` is trustworthy for this user: owned by it and not writable by group or others.
std::string untrusted(const struct stat& st) {
  if (st.st_uid != ::geteuid())
    return "owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " + std::to_string(::geteuid()) + ")";
  if (st.st_mode & (S_IWGRP | S_IWOTH)) return "writable by group or others (mode " + octal_mode(st.st_mode) + ")";
  return "";
}

// Warn once per distinct message: a refused directory would otherwise warn on every build.
void warn_once(const std::string& message) {
  static std::mutex mu;
  static std::set<std::string> seen;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!seen.insert(message).second) return;
  }
  logger("jit")->warn("{}", message);
}

// An open descriptor, closed at scope end.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

// Opens the cache directory (creating it, 0700, when `create`) and checks that it is a
// directory of this user's that no one else can write. -1 when it does not exist
// (why = "") or cannot be used (why says so).
int open_dir(const std::string& dir, bool create, std::string& why) {
  why.clear();
  if (dir.empty()) {
    why = "no kernel cache directory (" + no_cache_dir_reason() + "): kernels are built in memory";
    return -1;
  }
  if (create && !make_dirs(dir)) {
    why = "cannot create cache directory " + dir + ": " + std::strerror(errno);
    return -1;
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) why = "cannot open cache directory " + dir + ": " + std::strerror(errno);
    return -1;
  }
  struct stat st {};
  std::string bad = ::fstat(fd, &st) != 0 ? std::string(std::strerror(errno)) : untrusted(st);
  if (!bad.empty()) {
    ::close(fd);
    why = "not using cache directory " + dir + ": it is " + bad + "; kernels are built in memory";
    return -1;
  }
  return fd;
}

// Opens entry `name` of the directory for reading without following a symbolic link,
// and checks that it is a regular file of this user's that no one else can write.
// -1 when absent (why = "") or refused (why says so); `st` is its fstat.
int open_entry(int dfd, const std::string& name, struct stat& st, std::string& why) {
  why.clear();
  const int fd = ::openat(dfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP)
      why = "it is a symbolic link";
    else if (errno != ENOENT)
      why = std::strerror(errno);
    return -1;
  }
  if (::fstat(fd, &st) != 0)
    why = std::strerror(errno);
  else if (!S_ISREG(st.st_mode))
    why = "it is not a regular file";
  else
    why = untrusted(st);
  if (!why.empty()) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool read_fd(int fd, std::string& out) {
  out.clear();
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

bool write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Unlinks `name` only while it is still the file (st_dev, st_ino) that was read: a valid
// entry another process has renamed into place since is left alone.
bool unlink_if_same(int dfd, const std::string& name, std::uint64_t dev, std::uint64_t ino) {
  struct stat now {};
  if (::fstatat(dfd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (static_cast<std::uint64_t>(now.st_dev) != dev || static_cast<std::uint64_t>(now.st_ino) != ino) return false;
  return ::unlinkat(dfd, name.c_str(), 0) == 0;
}

// Names of the directory's entries (via a duplicate of dfd, which stays open).
std::vector<std::string> dir_names(int dfd) {
  std::vector<std::string> out;
  const int dup = ::fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return out;
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return out;
  }
  ::rewinddir(d);  // the duplicate shares its position with dfd, which an earlier listing moved
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

// Removes temporary files writers left behind: those older than `min_age_s` (every one
// when 0). Returns how many were removed.
std::size_t remove_temporaries(int dfd, long min_age_s) {
  std::size_t n = 0;
  const std::time_t now = std::time(nullptr);
  for (const auto& name : dir_names(dfd)) {
    if (!is_temp_name(name)) continue;
    struct stat st {};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (min_age_s > 0 && now - st.st_mtime < min_age_s) continue;
    if (::unlinkat(dfd, name.c_str(), 0) == 0) ++n;
  }
  return n;
}

}  // namespace

std::string disk_cache_encode(const CacheMeta& meta, const std::uint8_t* payload, std::size_t size) {
  // One line per field: a line break inside a value (a source named "a\nkey=b") would
  // start a field of its own, so it is stored as a blank.
  auto one_line = [](std::string v) {
    for (char& c : v)
      if (c == '\n' || c == '\r') c = ' ';
    return v;
  };
  const std::string m = "key=" + one_line(meta.key) + "\nbackend=" + one_line(meta.backend) +
                        "\ndevice=" + one_line(meta.device) + "\nprogram=" + one_line(meta.program) + "\n";
  std::string out(kMagic, 8);
  put_u32(out, static_cast<std::uint32_t>(m.size()));
  out += m;
  put_u64(out, size);
  Sha256 h;
  h.update(payload, size);
  auto d = h.digest();
  out.append(reinterpret_cast<const char*>(d.data()), d.size());
  out.append(reinterpret_cast<const char*>(payload), size);
  return out;
}

bool disk_cache_decode(const std::string& data, CacheMeta& meta, std::string& payload, std::string& why) {
  if (data.size() < 8 + 4 || std::memcmp(data.data(), kMagic, 8) != 0) {
    why = "bad header";
    return false;
  }
  std::size_t pos = 8;
  const std::uint64_t meta_len = get_le(data, pos, 4);
  pos += 4;
  if (data.size() < pos + meta_len + 8 + 32) {
    why = "truncated";
    return false;
  }
  std::istringstream lines(data.substr(pos, meta_len));
  pos += meta_len;
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "key") meta.key = v;
    else if (k == "backend") meta.backend = v;
    else if (k == "device") meta.device = v;
    else if (k == "program") meta.program = v;
  }
  const std::uint64_t payload_len = get_le(data, pos, 8);
  pos += 8;
  const std::string sum = data.substr(pos, 32);
  pos += 32;
  if (data.size() - pos != payload_len) {
    why = "truncated payload";
    return false;
  }
  payload = data.substr(pos);
  Sha256 h;
  h.update(payload);
  auto d = h.digest();
  if (std::memcmp(d.data(), sum.data(), 32) != 0) {
    why = "checksum mismatch";
    return false;
  }
  return true;
}

std::string disk_cache_path(const std::string& dir, const std::string& key) { return dir + "/" + key + kSuffix; }

std::optional<CacheHit> disk_cache_load(const std::string& dir, const std::string& key) {
  std::string why;
  Fd dfd(open_dir(dir, false, why));
  if (!dfd) {
    if (!why.empty()) warn_once(why);
    return std::nullopt;
  }
  const std::string name = key + kSuffix, path = disk_cache_path(dir, key);
  struct stat st {};
  Fd fd(open_entry(dfd.get(), name, st, why));
  if (!fd) {
    if (!why.empty()) logger("jit")->warn("not loading cache entry {}: {}", path, why);
    return std::nullopt;
  }
  std::string data;
  if (!read_fd(fd.get(), data)) {
    logger("jit")->warn("cannot read cache entry {}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  CacheHit hit;
  hit.dev = static_cast<std::uint64_t>(st.st_dev);
  hit.ino = static_cast<std::uint64_t>(st.st_ino);
  CacheMeta meta;
  std::string payload;
  if (!disk_cache_decode(data, meta, payload, why) || meta.key != key) {
    if (why.empty()) why = "key mismatch";
    disk_cache_discard(dir, key, hit, why);
    return std::nullopt;
  }
  hit.payload.assign(payload.begin(), payload.end());
  return hit;
}

bool disk_cache_discard(const std::string& dir, const std::string& key, const CacheHit& hit, const std::string& why) {
  std::string open_why;
  Fd dfd(open_dir(dir, false, open_why));
  if (!dfd) return false;
  const std::string path = disk_cache_path(dir, key);
  if (unlink_if_same(dfd.get(), key + kSuffix, hit.dev, hit.ino)) {
    logger("jit")->warn("removed corrupt cache entry {}: {}", path, why);
    return true;
  }
  logger("jit")->debug("corrupt cache entry {} ({}) was already replaced; left alone", path, why);
  return false;
}

void disk_cache_store(const std::string& dir, const CacheMeta& meta, const std::vector<std::uint8_t>& payload) {
  auto lg = logger("jit");
  std::string why;
  Fd dfd(open_dir(dir, true, why));
  if (!dfd) {
    warn_once(why.empty() ? "cannot open cache directory " + dir : why);
    return;
  }
  remove_temporaries(dfd.get(), kStaleTempSeconds);
  const std::string out = disk_cache_encode(meta, payload.data(), payload.size());

  // A fresh temporary, created exclusively (never an existing file, never through a
  // symbolic link), then renamed over the entry.
  static std::atomic<unsigned> counter{0};
  static const unsigned salt = std::random_device{}();
  const std::string name = meta.key + kSuffix, path = disk_cache_path(dir, meta.key);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "%ld.%u.%08x", static_cast<long>(::getpid()), counter++,
                  salt ^ static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
    tmp = name + ".tmp." + suffix;
    fd = ::openat(dfd.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    lg->warn("cannot create a temporary cache file in {}: {}", dir, std::strerror(errno));
    return;
  }
  const bool written = write_all(fd, out);
  const int write_errno = errno;
  if (::close(fd) != 0 || !written) {
    lg->warn("cannot write cache entry {}/{}: {}", dir, tmp, std::strerror(written ? errno : write_errno));
    ::unlinkat(dfd.get(), tmp.c_str(), 0);
    return;
  }
  if (::renameat(dfd.get(), tmp.c_str(), dfd.get(), name.c_str()) != 0) {
    lg->warn("cannot rename {}/{} to {}: {}", dir, tmp, path, std::strerror(errno));
    ::unlinkat(dfd.get(), tmp.c_str(), 0);
    return;
  }
  lg->debug("stored {} ({} bytes)", path, payload.size());
}

}  // namespace detail

std::string cache_dir_problem(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? cache_dir() : dir_in;
  if (dir.empty()) return "no kernel cache directory: " + no_cache_dir_reason();
  std::string why;
  detail::Fd dfd(detail::open_dir(dir, false, why));
  return why;
}

std::vector<CacheEntry> cache_entries(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? cache_dir() : dir_in;
  std::vector<CacheEntry> out;
  std::string why;
  detail::Fd dfd(detail::open_dir(dir, false, why));
  if (!dfd) return out;
  const std::string suffix = detail::kSuffix;
  for (const auto& name : detail::dir_names(dfd.get())) {
    if (!detail::ends_with(name, suffix)) continue;
    CacheEntry ce;
    ce.path = dir + "/" + name;
    ce.key = name.substr(0, name.size() - suffix.size());
    struct stat st {};
    detail::Fd fd(detail::open_entry(dfd.get(), name, st, why));
    std::string data;
    if (fd && detail::read_fd(fd.get(), data)) {
      ce.bytes = data.size();
      detail::CacheMeta meta;
      std::string payload;
      ce.valid = detail::disk_cache_decode(data, meta, payload, why) && meta.key == ce.key;
      ce.backend = meta.backend;
      ce.device = meta.device;
      ce.program = meta.program;
    }
    out.push_back(std::move(ce));
  }
  return out;
}

std::size_t clear_cache(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? cache_dir() : dir_in;
  std::string why;
  detail::Fd dfd(detail::open_dir(dir, false, why));
  if (!dfd) {
    if (!why.empty()) detail::warn_once(why);
    return 0;
  }
  std::size_t n = 0;
  for (const auto& name : detail::dir_names(dfd.get()))
    if (detail::ends_with(name, detail::kSuffix) && ::unlinkat(dfd.get(), name.c_str(), 0) == 0) ++n;
  return n + detail::remove_temporaries(dfd.get(), 0);
}

}  // namespace axle
