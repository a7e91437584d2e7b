// SHA-256 (cache keys, cache-entry checksums) against the NIST FIPS 180-2 example
// vectors, whole and fed in pieces.
#include "sha256.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using axle::detail::Sha256;

struct Vector {
  std::string message;
  const char* digest;
};

std::vector<Vector> nist_vectors() {
  return {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
}

std::string digest_of(const std::string& m) {
  Sha256 h;
  h.update(m);
  return h.hex_digest();
}

TEST(Sha256, NistVectors) {
  for (const auto& v : nist_vectors()) EXPECT_EQ(digest_of(v.message), v.digest) << v.message.size() << " bytes";
}

TEST(Sha256, DigestMatchesHexDigest) {
  Sha256 a, b;
  a.update("abc");
  b.update("abc");
  const auto d = a.digest();
  EXPECT_EQ(axle::detail::to_hex(d.data(), d.size()), b.hex_digest());
  EXPECT_EQ(axle::detail::to_hex(d.data(), 3), "ba7816");
}

// Every split point of each short vector, and splits around the 64-byte block and the
// 56-byte padding boundaries, give the one-shot digest.
TEST(Sha256, IncrementalUpdatesMatchOneShot) {
  for (const auto& v : nist_vectors()) {
    if (v.message.size() > 1000) continue;
    for (std::size_t cut = 0; cut <= v.message.size(); ++cut) {
      Sha256 h;
      h.update(v.message.substr(0, cut));
      h.update(v.message.substr(cut));
      EXPECT_EQ(h.hex_digest(), v.digest) << "split at " << cut;
    }
    Sha256 bytewise;
    for (char c : v.message) bytewise.update(&c, 1);
    EXPECT_EQ(bytewise.hex_digest(), v.digest);
  }
  // Lengths around the block (64) and padding (55, 56) boundaries, in three pieces.
  for (std::size_t n : {55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 127u, 128u, 129u}) {
    std::string m;
    for (std::size_t i = 0; i < n; ++i) m.push_back(static_cast<char>('A' + i * 7 % 26));
    const std::string whole = digest_of(m);
    for (std::size_t a = 0; a <= n; a += 5)
      for (std::size_t b = a; b <= n; b += 9) {
        Sha256 h;
        h.update(m.substr(0, a));
        h.update(m.substr(a, b - a));
        h.update(m.substr(b));
        ASSERT_EQ(h.hex_digest(), whole) << n << " bytes split at " << a << ", " << b;
      }
  }
}

TEST(Sha256, MillionAsInUnevenChunks) {
  const std::string chunk(997, 'a');  // prime: chunks straddle every block offset
  Sha256 h;
  std::size_t left = 1000000;
  while (left > 0) {
    const std::size_t n = std::min(left, chunk.size());
    h.update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Fields are length-prefixed: moving bytes between fields changes the key.
TEST(Sha256, FieldsAreUnambiguous) {
  Sha256 a, b, c;
  a.field("ab");
  a.field("c");
  b.field("a");
  b.field("bc");
  c.field("ab");
  c.field("c");
  const std::string da = a.hex_digest();
  EXPECT_NE(da, b.hex_digest());
  EXPECT_EQ(da, c.hex_digest());
  EXPECT_NE(da, digest_of("abc"));
}

}  // namespace
