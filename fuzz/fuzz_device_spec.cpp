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
  axle::Device d;
  try {
    d = axle::select_device(spec);
  } catch (const axle::InvalidArgument& e) {
    AXLE_FUZZ_CHECK(std::string(e.what()).find("not a device spec") != std::string::npos, e.what());
    return 0;
  } catch (const axle::DeviceUnavailable& e) {
    AXLE_FUZZ_CHECK(std::string(e.what()).find("cannot serve") != std::string::npos, e.what());
    return 0;
  } catch (const std::exception& e) {
    axle_fuzz::fail(std::string("unexpected exception: ") + e.what());
  }
  AXLE_FUZZ_CHECK(d.valid(), "select_device returned an empty handle for '" + spec + "'");
  AXLE_FUZZ_CHECK(axle::select_device(d.id()).id() == d.id(), d.id());
  return 0;
}
