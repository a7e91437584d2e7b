// The device-spec parser (AXLE_DEVICE, axle::select_device): a spec gives a device, or
// InvalidArgument (malformed) / DeviceUnavailable (well-formed, nothing serves it),
// each naming the spec; a device found is found again by its id.
#include <cstddef>
#include <cstdint>
#include <string>

#include "axle/device.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)axle::devices();  // open the backends once, outside the inputs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  // Messages quote the spec with control characters escaped: one readable string.
  auto readable = [](const std::string& m) {
    for (char c : m)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\n') || c == 0x7f) return false;
    return true;
  };
  axle::Device d;
  try {
    d = axle::select_device(spec);
  } catch (const axle::InvalidArgument& e) {
    const std::string m = e.what();
    AXLE_FUZZ_CHECK(m.find("not a device spec") != std::string::npos && readable(m), m);
    return 0;
  } catch (const axle::DeviceUnavailable& e) {
    const std::string m = e.what();
    AXLE_FUZZ_CHECK(m.find("cannot serve") != std::string::npos && readable(m), m);
    return 0;
  } catch (const std::exception& e) {
    axle_fuzz::fail(std::string("unexpected exception: ") + e.what());
  }
  AXLE_FUZZ_CHECK(d.valid(), "select_device returned an empty handle for '" + spec + "'");
  AXLE_FUZZ_CHECK(axle::select_device(d.id()).id() == d.id(), d.id());
  return 0;
}
