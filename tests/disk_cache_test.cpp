// The on-disk kernel cache, per device: entries are written atomically, found by a
// second process, keyed by everything that changes the binary, and a damaged entry
// is removed and rebuilt, never loaded.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "axle/axle.hpp"
#include "axle/cache.hpp"
#include "disk_cache.hpp"
#include "test_util.hpp"

using axle_test::ScopedEnv;
using axle_test::TempDir;

namespace {

// A portable kernel no cache has seen: the token makes the text unique.
std::string probe_source(int value, const std::string& extra = {}) {
  return "// probe " + axle_test::unique_token() + "\n" + extra +
         "\nAXLE_KERNEL void probe(AXLE_GLOBAL int* out, long v) {\n"
         "  out[AXLE_GLOBAL_ID(0)] = " +
         std::to_string(value) + " + (int)v;\n}\n";
}

struct ProbeResult {
  int status = -1;
  std::map<std::string, std::string> fields;
  std::string raw;
};

// Runs the helper program (a second process) with AXLE_CACHE_DIR = dir.
ProbeResult run_probe(const std::string& dir, const axle::Device& dev, const std::string& source_file,
                      const std::vector<std::string>& defines = {}) {
  std::string cmd = "AXLE_CACHE_DIR='" + dir + "' '" AXLE_CACHE_PROBE "' '" + dev.id() + "' '" + source_file + "'";
  for (const auto& d : defines) cmd += " '" + d + "'";
  cmd += " 2>&1";
  ProbeResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p)) r.raw += buf;
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::size_t pos = 0;
  while (pos < r.raw.size()) {
    std::size_t nl = r.raw.find('\n', pos);
    if (nl == std::string::npos) nl = r.raw.size();
    const std::string line = r.raw.substr(pos, nl - pos);
    const auto eq = line.find('=');
    if (eq != std::string::npos) r.fields[line.substr(0, eq)] = line.substr(eq + 1);
    pos = nl + 1;
  }
  return r;
}

std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& n : axle_test::list_dir(dir))
    if (n.find(".tmp.") != std::string::npos) out.push_back(n);
  return out;
}

std::vector<axle::CacheEntry> entries_with_key(const std::string& dir, const std::string& key) {
  std::vector<axle::CacheEntry> out;
  for (auto& e : axle::cache_entries(dir))
    if (e.key == key) out.push_back(e);
  return out;
}

int run_kernel(const axle::Program& p) {
  const axle::Device& dev = p.device();
  axle::Stream s = dev.create_stream();
  axle::Buffer b = dev.alloc<int>(1);
  s.launch(p.kernel("probe"), axle::Range{1}, axle::Range{}, b.view<int>(), std::int64_t{0});
  std::vector<int> out(1);
  s.copy(b, out);
  s.synchronize();
  return out[0];
}

class DiskCacheTest : public ::testing::TestWithParam<axle::Device> {
 protected:
  void SetUp() override { env_ = std::make_unique<ScopedEnv>("AXLE_CACHE_DIR", dir_.path()); }
  void TearDown() override {
    EXPECT_TRUE(temp_files(dir_.path()).empty()) << "a temporary file was left in the cache directory";
    env_.reset();
  }
  const axle::Device& dev() const { return GetParam(); }
  const std::string& dir() const { return dir_.path(); }

  TempDir dir_;
  std::unique_ptr<ScopedEnv> env_;
};

INSTANTIATE_TEST_SUITE_P(Devices, DiskCacheTest, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DiskCacheTest);

}  // namespace

TEST_P(DiskCacheTest, FirstBuildWritesOneValidEntry) {
  EXPECT_EQ(axle::cache_dir(), dir());
  EXPECT_TRUE(axle::cache_entries().empty());
  const axle::Source src = axle::Source::portable(probe_source(41), "first.cl");
  axle::Program p = dev().build(src);
  EXPECT_FALSE(p.from_disk_cache());
  EXPECT_EQ(run_kernel(p), 41);
  const auto entries = axle::cache_entries();
  ASSERT_EQ(entries.size(), 1u);
  const auto& e = entries[0];
  EXPECT_EQ(e.key, p.cache_key());
  EXPECT_TRUE(e.valid);
  EXPECT_EQ(e.backend, dev().backend());
  EXPECT_EQ(e.device, dev().name());
  EXPECT_EQ(e.program, "first.cl");
  EXPECT_GT(e.bytes, 0u);
  EXPECT_EQ(e.path, dir() + "/" + e.key + ".axlebin");
  EXPECT_EQ(axle_test::read_file(e.path).size(), e.bytes);
  // The same list through an explicit directory argument.
  EXPECT_EQ(axle::cache_entries(dir()).size(), 1u);
  // Building it again in this process is an in-memory hit: no new entry.
  axle::Program again = dev().build(src);
  EXPECT_EQ(again.native_handle(), p.native_handle());
  EXPECT_EQ(axle::cache_entries().size(), 1u);
}

TEST_P(DiskCacheTest, SecondProcessLoadsFromDisk) {
  TempDir src_dir;
  const std::string file = src_dir.write("probe.cl", probe_source(1234));
  ProbeResult first = run_probe(dir(), dev(), file);
  ASSERT_EQ(first.status, 0) << first.raw;
  EXPECT_EQ(first.fields["source"], "compiled") << first.raw;
  EXPECT_EQ(first.fields["value"], "1234");
  ASSERT_EQ(entries_with_key(dir(), first.fields["key"]).size(), 1u);

  ProbeResult second = run_probe(dir(), dev(), file);
  ASSERT_EQ(second.status, 0) << second.raw;
  EXPECT_EQ(second.fields["source"], "disk") << second.raw;
  EXPECT_EQ(second.fields["key"], first.fields["key"]);
  EXPECT_EQ(second.fields["value"], "1234");
  // A program loaded from the cache is validated like a compiled one.
  EXPECT_EQ(first.fields["argcheck"], "yes");
  EXPECT_EQ(second.fields["argcheck"], "yes") << "argument checks are lost on a program loaded from disk";
  EXPECT_EQ(axle::cache_entries().size(), 1u);

  // This process built the same text (same name, same options): it agrees on the key.
  axle::Program here = dev().build(axle::Source::from_file(file, axle::SourceKind::Portable));
  EXPECT_EQ(here.cache_key(), first.fields["key"]);
  EXPECT_TRUE(here.from_disk_cache());
  EXPECT_EQ(run_kernel(here), 1234);
}

TEST_P(DiskCacheTest, HeadersOptionsAndDefinesChangeTheKey) {
  const std::string text = probe_source(0, "#include \"value.h\"\n#ifndef EXTRA\n#define EXTRA 0\n#endif\n");
  // The kernel writes VALUE + EXTRA through the define in the header.
  std::string kernel_text = text;
  const std::string from = " 0 + (int)v;";
  kernel_text.replace(kernel_text.find(from), from.size(), " VALUE + EXTRA + (int)v;");
  const axle::Source src = axle::Source::portable(kernel_text, "with_header.cl");

  axle::BuildOptions h1;
  h1.header("value.h", "#define VALUE 10\n");
  axle::Program p1 = dev().build(src, h1);
  EXPECT_FALSE(p1.from_disk_cache());
  EXPECT_EQ(run_kernel(p1), 10);

  axle::BuildOptions h2;
  h2.header("value.h", "#define VALUE 20\n");
  axle::Program p2 = dev().build(src, h2);
  EXPECT_NE(p2.cache_key(), p1.cache_key());
  EXPECT_FALSE(p2.from_disk_cache());
  EXPECT_EQ(run_kernel(p2), 20);

  axle::BuildOptions d1 = h1;
  d1.define("EXTRA", 5);
  axle::Program p3 = dev().build(src, d1);
  EXPECT_NE(p3.cache_key(), p1.cache_key());
  EXPECT_EQ(run_kernel(p3), 15);

  axle::BuildOptions d2 = h1;
  d2.define("EXTRA", 6);
  axle::Program p4 = dev().build(src, d2);
  EXPECT_NE(p4.cache_key(), p3.cache_key());
  EXPECT_EQ(run_kernel(p4), 16);

  // Native flags are part of the key too (a harmless flag on each backend).
  axle::BuildOptions f1 = h1;
  f1.flags = dev().backend() == "opencl" ? "-cl-mad-enable" : "--use_fast_math";
  axle::Program p5 = dev().build(src, f1);
  EXPECT_NE(p5.cache_key(), p1.cache_key());
  EXPECT_EQ(run_kernel(p5), 10);

  // A header nobody includes does not change the program.
  axle::BuildOptions unused = h1;
  unused.header("unused.h", "#define NOTHING 1\n");
  EXPECT_EQ(dev().build(src, unused).cache_key(), p1.cache_key());

  std::set<std::string> keys;
  for (const auto& e : axle::cache_entries()) {
    EXPECT_TRUE(e.valid) << e.path;
    keys.insert(e.key);
  }
  EXPECT_EQ(keys, (std::set<std::string>{p1.cache_key(), p2.cache_key(), p3.cache_key(), p4.cache_key(),
                                         p5.cache_key()}));

}

TEST_P(DiskCacheTest, CorruptEntryIsRemovedAndRebuilt) {
  TempDir src_dir;
  const std::string file = src_dir.write("corrupt.cl", probe_source(77));
  ProbeResult first = run_probe(dir(), dev(), file);
  ASSERT_EQ(first.status, 0) << first.raw;
  auto es = entries_with_key(dir(), first.fields["key"]);
  ASSERT_EQ(es.size(), 1u);
  // Flip bytes inside the payload (the last bytes of the file).
  {
    std::string data = axle_test::read_file(es[0].path);
    ASSERT_GT(data.size(), 64u);
    for (std::size_t i = data.size() - 16; i < data.size(); ++i) data[i] = static_cast<char>(data[i] ^ 0x5A);
    std::ofstream(es[0].path, std::ios::binary | std::ios::trunc) << data;
  }
  es = entries_with_key(dir(), first.fields["key"]);
  ASSERT_EQ(es.size(), 1u);
  EXPECT_FALSE(es[0].valid) << "a corrupted entry is listed as valid";

  ProbeResult second = run_probe(dir(), dev(), file);
  ASSERT_EQ(second.status, 0) << second.raw;
  EXPECT_EQ(second.fields["source"], "compiled") << "a corrupted entry was loaded";
  EXPECT_EQ(second.fields["value"], "77");
  es = entries_with_key(dir(), first.fields["key"]);
  ASSERT_EQ(es.size(), 1u);
  EXPECT_TRUE(es[0].valid) << "the rebuilt entry was not stored again";

  ProbeResult third = run_probe(dir(), dev(), file);
  EXPECT_EQ(third.fields["source"], "disk") << third.raw;
  EXPECT_EQ(third.fields["value"], "77");
}

TEST_P(DiskCacheTest, TruncatedAndForeignEntriesAreRemovedAndRebuilt) {
  TempDir src_dir;
  const std::string file = src_dir.write("trunc.cl", probe_source(88));
  ProbeResult first = run_probe(dir(), dev(), file);
  ASSERT_EQ(first.status, 0) << first.raw;
  const std::string key = first.fields["key"];
  auto es = entries_with_key(dir(), key);
  ASSERT_EQ(es.size(), 1u);
  const std::string path = es[0].path;
  const std::string good = axle_test::read_file(path);

  // Truncated in the payload, in the header, and an entry stored under another key.
  std::vector<std::string> bad = {good.substr(0, good.size() / 2), good.substr(0, 10), std::string()};
  {
    TempDir other_dir;
    const std::string other_file = src_dir.write("other.cl", probe_source(99));
    ProbeResult other = run_probe(other_dir.path(), dev(), other_file);
    ASSERT_EQ(other.status, 0) << other.raw;
    bad.push_back(axle_test::read_file(other_dir.path() + "/" + other.fields["key"] + ".axlebin"));
  }
  for (std::size_t i = 0; i < bad.size(); ++i) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad[i];
    es = entries_with_key(dir(), key);
    ASSERT_EQ(es.size(), 1u);
    EXPECT_FALSE(es[0].valid) << "damaged entry " << i << " listed as valid";
    ProbeResult r = run_probe(dir(), dev(), file);
    ASSERT_EQ(r.status, 0) << r.raw;
    EXPECT_EQ(r.fields["source"], "compiled") << "damaged entry " << i << " was loaded";
    EXPECT_EQ(r.fields["value"], "88") << "damaged entry " << i;
    es = entries_with_key(dir(), key);
    ASSERT_EQ(es.size(), 1u);
    EXPECT_TRUE(es[0].valid) << "no valid entry after rebuilding damaged entry " << i;
  }
}

TEST_P(DiskCacheTest, ClearCacheAndOptOut) {
  axle::Program a = dev().build(axle::Source::portable(probe_source(1), "a.cl"));
  axle::Program b = dev().build(axle::Source::portable(probe_source(2), "b.cl"));
  axle::BuildOptions no_disk;
  no_disk.disk_cache = false;
  axle::Program c = dev().build(axle::Source::portable(probe_source(3), "c.cl"), no_disk);
  EXPECT_EQ(run_kernel(c), 3);
  auto es = axle::cache_entries();
  ASSERT_EQ(es.size(), 2u) << "disk_cache = false still wrote an entry";
  std::set<std::string> keys{es[0].key, es[1].key};
  EXPECT_EQ(keys, (std::set<std::string>{a.cache_key(), b.cache_key()}));
  // A stray file that is not an entry is left alone.
  const std::string stray = dir() + "/notes.txt";
  std::ofstream(stray) << "not a cache entry";
  EXPECT_EQ(axle::clear_cache(), 2u);
  EXPECT_TRUE(axle::cache_entries().empty());
  EXPECT_EQ(axle_test::read_file(stray), "not a cache entry");
  EXPECT_EQ(axle::clear_cache(), 0u);
  EXPECT_EQ(axle::clear_cache(dir() + "/does-not-exist"), 0u);
  EXPECT_TRUE(axle::cache_entries(dir() + "/does-not-exist").empty());
  // Programs built before the clear still run.
  EXPECT_EQ(run_kernel(a), 1);
}

TEST_P(DiskCacheTest, UnwritableDirectoryIsNotAnError) {
  TempDir parent;
  const std::string file_not_dir = parent.write("blocker", "x");
  ScopedEnv env("AXLE_CACHE_DIR", file_not_dir + "/cache");
  axle::Program p = dev().build(axle::Source::portable(probe_source(5), "ro.cl"));
  EXPECT_FALSE(p.from_disk_cache());
  EXPECT_EQ(run_kernel(p), 5);
  EXPECT_TRUE(axle::cache_entries().empty());
}

// A line break in a program's or device's name must not start a field of its own in
// the entry's metadata (a source named "x\nkey=other" once made every entry of it
// fail its key check, so it was discarded and rebuilt on every run).
TEST(DiskCacheFormat, LineBreaksInNamesKeepTheEntryValid) {
  namespace d = axle::detail;
  TempDir dir;
  const std::string key(64, 'a');
  const std::vector<std::uint8_t> payload = {1, 2, 3, 0, 255};
  d::disk_cache_store(dir.path(), d::CacheMeta{key, "opencl", "cpu\r\nkey=b", "k.cl\nkey=other\nprogram=p"}, payload);
  const auto hit = d::disk_cache_load(dir.path(), key);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->payload, payload);
  const auto entries = axle::cache_entries(dir.path());
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_TRUE(entries[0].valid);
  EXPECT_EQ(entries[0].key, key);
  EXPECT_EQ(entries[0].device, "cpu  key=b");
  EXPECT_EQ(entries[0].program, "k.cl key=other program=p");
}

TEST(DiskCacheFormat, DecodeRefusesDamagedEntriesWithTheReason) {
  namespace d = axle::detail;
  const std::string payload = "binary";
  const std::string file =
      d::disk_cache_encode(d::CacheMeta{"k", "b", "d", "p"}, reinterpret_cast<const std::uint8_t*>(payload.data()),
                           payload.size());
  d::CacheMeta meta;
  std::string got, why;
  ASSERT_TRUE(d::disk_cache_decode(file, meta, got, why)) << why;
  EXPECT_EQ(got, payload);
  EXPECT_EQ(meta.key, "k");
  EXPECT_EQ(meta.program, "p");
  auto refused = [&](const std::string& bytes) {
    d::CacheMeta m;
    std::string p, w;
    EXPECT_FALSE(d::disk_cache_decode(bytes, m, p, w));
    return w;
  };
  EXPECT_EQ(refused(""), "bad header");
  EXPECT_EQ(refused("AXLEBIN2" + file.substr(8)), "bad header");
  EXPECT_EQ(refused(file.substr(0, 20)), "truncated");
  EXPECT_EQ(refused(file.substr(0, file.size() - 1)), "truncated payload");
  EXPECT_EQ(refused(file + "x"), "truncated payload");
  std::string flipped = file;
  flipped.back() ^= 1;
  EXPECT_EQ(refused(flipped), "checksum mismatch");
  // A metadata length past the end of the file.
  std::string huge = file;
  huge[8] = huge[9] = huge[10] = huge[11] = '\xff';
  EXPECT_EQ(refused(huge), "truncated");
}
