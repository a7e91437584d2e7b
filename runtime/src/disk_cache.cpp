#include "disk_cache.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
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

bool make_dirs(const std::string& dir) {
  std::string cur;
  for (std::size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return false;
    }
    if (i < dir.size()) cur.push_back(dir[i]);
  }
  return true;
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

struct Parsed {
  CacheMeta meta;
  std::string payload;
};

// Parse and verify a whole entry file.
bool parse_entry(const std::string& data, Parsed& out, std::string& why) {
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
  std::istringstream meta(data.substr(pos, meta_len));
  pos += meta_len;
  for (std::string line; std::getline(meta, line);) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "key") out.meta.key = v;
    else if (k == "backend") out.meta.backend = v;
    else if (k == "device") out.meta.device = v;
    else if (k == "program") out.meta.program = v;
  }
  const std::uint64_t payload_len = get_le(data, pos, 8);
  pos += 8;
  const std::string sum = data.substr(pos, 32);
  pos += 32;
  if (data.size() - pos != payload_len) {
    why = "truncated payload";
    return false;
  }
  out.payload = data.substr(pos);
  Sha256 h;
  h.update(out.payload);
  auto d = h.digest();
  if (std::memcmp(d.data(), sum.data(), 32) != 0) {
    why = "checksum mismatch";
    return false;
  }
  return true;
}

}  // namespace

std::string disk_cache_path(const std::string& dir, const std::string& key) { return dir + "/" + key + kSuffix; }

std::optional<std::vector<std::uint8_t>> disk_cache_load(const std::string& dir, const std::string& key) {
  const std::string path = disk_cache_path(dir, key);
  std::string data;
  if (!read_file(path, data)) return std::nullopt;
  Parsed p;
  std::string why;
  if (!parse_entry(data, p, why) || p.meta.key != key) {
    if (why.empty()) why = "key mismatch";
    logger("jit")->warn("removing corrupt cache entry {}: {}", path, why);
    ::unlink(path.c_str());
    return std::nullopt;
  }
  return std::vector<std::uint8_t>(p.payload.begin(), p.payload.end());
}

void disk_cache_store(const std::string& dir, const CacheMeta& meta, const std::vector<std::uint8_t>& payload) {
  auto lg = logger("jit");
  if (!make_dirs(dir)) {
    lg->warn("cannot create cache directory {}: {}", dir, std::strerror(errno));
    return;
  }
  std::string m = "key=" + meta.key + "\nbackend=" + meta.backend + "\ndevice=" + meta.device +
                  "\nprogram=" + meta.program + "\n";
  std::string out(kMagic, 8);
  put_u32(out, static_cast<std::uint32_t>(m.size()));
  out += m;
  put_u64(out, payload.size());
  Sha256 h;
  h.update(payload.data(), payload.size());
  auto d = h.digest();
  out.append(reinterpret_cast<const char*>(d.data()), d.size());
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());

  static std::atomic<unsigned> counter{0};
  const std::string path = disk_cache_path(dir, meta.key);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f.write(out.data(), static_cast<std::streamsize>(out.size())) || !f.flush()) {
      lg->warn("cannot write cache entry {}", tmp);
      f.close();
      ::unlink(tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    lg->warn("cannot rename {} to {}: {}", tmp, path, std::strerror(errno));
    ::unlink(tmp.c_str());
    return;
  }
  lg->debug("stored {} ({} bytes)", path, payload.size());
}

}  // namespace detail

std::vector<CacheEntry> cache_entries(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? cache_dir() : dir_in;
  std::vector<CacheEntry> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  const std::string suffix = detail::kSuffix;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    CacheEntry ce;
    ce.path = dir + "/" + name;
    ce.key = name.substr(0, name.size() - suffix.size());
    std::string data;
    if (detail::read_file(ce.path, data)) {
      ce.bytes = data.size();
      detail::Parsed p;
      std::string why;
      ce.valid = detail::parse_entry(data, p, why) && p.meta.key == ce.key;
      ce.backend = p.meta.backend;
      ce.device = p.meta.device;
      ce.program = p.meta.program;
    }
    out.push_back(std::move(ce));
  }
  ::closedir(d);
  return out;
}

std::size_t clear_cache(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? cache_dir() : dir_in;
  std::size_t n = 0;
  for (auto& e : cache_entries(dir))
    if (::unlink(e.path.c_str()) == 0) ++n;
  return n;
}

}  // namespace axle
