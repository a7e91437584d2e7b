// The disk-cache entry format: any bytes decode or are refused with a reason; an entry
// encoded from any fields and payload decodes to them (line breaks in the fields stored
// as blanks), and any change to its payload is caught by the checksum.
#include <cstddef>
#include <cstdint>
#include <string>

#include "disk_cache.hpp"
#include "fuzz_util.hpp"

namespace {
std::string one_line(std::string v) {
  for (char& c : v)
    if (c == '\n' || c == '\r') c = ' ';
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace axle::detail;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  {
    CacheMeta meta;
    std::string payload, why;
    if (disk_cache_decode(bytes, meta, payload, why)) {
      AXLE_FUZZ_CHECK(why.empty(), why);
      AXLE_FUZZ_CHECK(payload.size() <= bytes.size(), "payload larger than the file");
    } else {
      AXLE_FUZZ_CHECK(!why.empty(), "a refused entry says why");
    }
  }
  // The input as four fields and a payload, separated by NUL bytes.
  std::string parts[5];
  std::size_t k = 0;
  for (char c : bytes) {
    if (c == '\0' && k < 4)
      ++k;
    else
      parts[k] += c;
  }
  const CacheMeta meta{parts[0], parts[1], parts[2], parts[3]};
  const std::string& payload = parts[4];
  const std::string file =
      disk_cache_encode(meta, reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
  CacheMeta back;
  std::string back_payload, why;
  AXLE_FUZZ_CHECK(disk_cache_decode(file, back, back_payload, why), why);
  AXLE_FUZZ_CHECK(back_payload == payload, "payload round trip");
  for (auto [got, want] : {std::pair{&back.key, &meta.key}, std::pair{&back.backend, &meta.backend},
                           std::pair{&back.device, &meta.device}, std::pair{&back.program, &meta.program}})
    AXLE_FUZZ_CHECK(*got == one_line(*want), "field round trip: '" + *got + "' for '" + *want + "'");
  if (!payload.empty()) {
    std::string flipped = file;
    flipped.back() = static_cast<char>(flipped.back() ^ 1);
    CacheMeta m2;
    std::string p2, why2;
    AXLE_FUZZ_CHECK(!disk_cache_decode(flipped, m2, p2, why2) && why2 == "checksum mismatch", why2);
  }
  // Every truncation is refused.
  for (std::size_t cut : {std::size_t{0}, std::size_t{11}, file.size() / 2, file.size() - 1}) {
    if (cut >= file.size()) continue;
    CacheMeta m3;
    std::string p3, why3;
    AXLE_FUZZ_CHECK(!disk_cache_decode(file.substr(0, cut), m3, p3, why3), "a truncated entry was accepted");
  }
  return 0;
}
