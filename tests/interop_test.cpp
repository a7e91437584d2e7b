// Native-handle interop on OpenCL devices, against raw OpenCL: what Stream::adopt
// accepts (an in-order queue of the device's own context) and what an adopted queue
// without profiling means for event timing. CUDA's twins are in cuda_backend_test.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "test_util.hpp"

#if AXLE_TEST_WITH_OPENCL
#include "axle/interop/opencl.hpp"
#endif

namespace {

class OpenCLInteropTest : public ::testing::TestWithParam<axle::Device> {
 protected:
  void SetUp() override {
#if AXLE_TEST_WITH_OPENCL
    if (dev().backend() != "opencl") GTEST_SKIP() << "OpenCL interop applies to OpenCL devices only";
#else
    GTEST_SKIP() << "built without the OpenCL headers for the test";
#endif
  }
  const axle::Device& dev() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Devices, OpenCLInteropTest, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpenCLInteropTest);

#if AXLE_TEST_WITH_OPENCL

// A queue on the device's own context, released at scope exit.
class RawQueue {
 public:
  RawQueue(const axle::Device& dev, cl_command_queue_properties props) {
    q_ = clCreateCommandQueue(axle::opencl::context(dev), axle::opencl::device_id(dev), props, &status_);
  }
  ~RawQueue() {
    if (q_) clReleaseCommandQueue(q_);
  }
  RawQueue(const RawQueue&) = delete;
  RawQueue& operator=(const RawQueue&) = delete;
  cl_command_queue get() const { return q_; }
  cl_int status() const { return status_; }

 private:
  cl_command_queue q_ = nullptr;
  cl_int status_ = CL_SUCCESS;
};

TEST_P(OpenCLInteropTest, AdoptRefusesAnOutOfOrderQueue) {
  RawQueue ooo(dev(), CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
  if (ooo.status() == CL_INVALID_QUEUE_PROPERTIES) GTEST_SKIP() << "the device has no out-of-order queues";
  ASSERT_EQ(ooo.status(), CL_SUCCESS);
  AXLE_EXPECT_THROW_MSG(axle::opencl::adopt_queue(dev(), ooo.get()), axle::InvalidArgument,
                        {"out-of-order", "CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE", "in order", dev().id()});
  // The queue is untouched and still the caller's.
  cl_uint refs = 0;
  ASSERT_EQ(clGetCommandQueueInfo(ooo.get(), CL_QUEUE_REFERENCE_COUNT, sizeof(refs), &refs, nullptr), CL_SUCCESS);
  EXPECT_GE(refs, 1u);
}

TEST_P(OpenCLInteropTest, AdoptRefusesAQueueOfAnotherContext) {
  cl_device_id did = axle::opencl::device_id(dev());
  cl_int st = CL_SUCCESS;
  cl_context other = clCreateContext(nullptr, 1, &did, nullptr, nullptr, &st);
  ASSERT_EQ(st, CL_SUCCESS);
  cl_command_queue q = clCreateCommandQueue(other, did, CL_QUEUE_PROFILING_ENABLE, &st);
  ASSERT_EQ(st, CL_SUCCESS);
  AXLE_EXPECT_THROW_MSG(axle::opencl::adopt_queue(dev(), q), axle::InvalidArgument,
                        {"another context", dev().id(), "axle::opencl::context"});
  clReleaseCommandQueue(q);
  clReleaseContext(other);
}

TEST_P(OpenCLInteropTest, AdoptedInOrderQueuesRunAndTimeWithProfiling) {
  RawQueue q(dev(), CL_QUEUE_PROFILING_ENABLE);
  ASSERT_EQ(q.status(), CL_SUCCESS);
  axle::Stream s = axle::opencl::adopt_queue(dev(), q.get());
  axle::Buffer b = dev().alloc<int>(1024);
  axle::Event start = s.record();
  s.fill(b.view<int>(), 7);
  axle::Event stop = s.record();
  std::vector<int> out(1024);
  s.copy(b, out);
  s.synchronize();
  EXPECT_EQ(out, std::vector<int>(1024, 7));
  EXPECT_GE(stop.elapsed_ms(start), 0.0f);
}

TEST_P(OpenCLInteropTest, TimingOnAnAdoptedQueueWithoutProfilingIsUnsupported) {
  RawQueue q(dev(), 0);
  ASSERT_EQ(q.status(), CL_SUCCESS);
  axle::Stream adopted = axle::opencl::adopt_queue(dev(), q.get());
  axle::Stream own = dev().create_stream();
  axle::Event a = adopted.record();
  axle::Event b = adopted.record();
  axle::Event c = own.record();
  AXLE_EXPECT_THROW_MSG(b.elapsed_ms(a), axle::Unsupported,
                        {"elapsed_ms", "no device timestamps", "adopted without CL_QUEUE_PROFILING_ENABLE"});
  // Either end on such a queue: the message says which.
  AXLE_EXPECT_THROW_MSG(c.elapsed_ms(a), axle::Unsupported, {"start event", "CL_QUEUE_PROFILING_ENABLE"});
  AXLE_EXPECT_THROW_MSG(a.elapsed_ms(c), axle::Unsupported, {"end event", "CL_QUEUE_PROFILING_ENABLE"});
  try {
    b.elapsed_ms(a);
    ADD_FAILURE() << "elapsed_ms on an unprofiled adopted queue did not throw";
  } catch (const axle::Unsupported& e) {
    EXPECT_EQ(e.backend(), "opencl");
    EXPECT_EQ(e.status_name(), "CL_PROFILING_INFO_NOT_AVAILABLE");
    EXPECT_EQ(e.call(), "clGetEventProfilingInfo");
  }
  // Events of Axle's own streams still time.
  axle::Event d = own.record();
  EXPECT_GE(d.elapsed_ms(c), 0.0f);
}

#endif  // AXLE_TEST_WITH_OPENCL

}  // namespace
