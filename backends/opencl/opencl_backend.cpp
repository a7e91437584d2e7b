// The OpenCL backend: one context per device, profiling-enabled in-order queues,
// programs from Axle portable source, OpenCL C or cached binaries.
//
// Thread-safety: device objects are shared and immutable after creation; a kernel's
// arguments are bound and enqueued under that kernel's mutex; streams are used by
// one thread at a time (front-end contract).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#ifdef __linux__
#include <sched.h>
#include <unistd.h>
#endif

#include "backend/backend.hpp"
#include "cl_loader.hpp"
#include "log.hpp"

namespace axle {
namespace embedded {
std::string_view runtime_resource(std::string_view name);
}

namespace detail {
namespace {

const cl::Api* g_api = nullptr;  // set once by the backend constructor, before any device exists
const cl::Api& api() { return *g_api; }

Error::Details details(cl_int status, const char* call) {
  return Error::Details{"opencl", status, cl::error_name(status), call};
}

bool exhausted(cl_int status) {
  return status == CL_MEM_OBJECT_ALLOCATION_FAILURE || status == CL_OUT_OF_RESOURCES ||
         status == CL_OUT_OF_HOST_MEMORY;
}

[[noreturn]] void fail(cl_int status, const char* call, const std::string& what) {
  if (exhausted(status)) throw OutOfMemory(what, details(status, call));
  if (status == CL_INVALID_VALUE || status == CL_INVALID_ARG_SIZE || status == CL_INVALID_ARG_VALUE ||
      status == CL_INVALID_WORK_GROUP_SIZE || status == CL_INVALID_WORK_ITEM_SIZE ||
      status == CL_INVALID_KERNEL_ARGS || status == CL_INVALID_BUFFER_SIZE || status == CL_INVALID_MEM_OBJECT ||
      status == CL_MISALIGNED_SUB_BUFFER_OFFSET)
    throw InvalidArgument(what, details(status, call));
  throw BackendError(what, details(status, call));
}

#define AXLE_CL_CHECK(call_expr, name, what)     \
  do {                                          \
    cl_int axle_st_ = (call_expr);              \
    if (axle_st_ != CL_SUCCESS) fail(axle_st_, name, what); \
  } while (0)

void log_release(cl_int st, const char* call) {
  if (st != CL_SUCCESS) logger("opencl")->warn("{} failed in a destructor: {} ({})", call, cl::error_name(st), st);
}

std::string device_string(cl_device_id d, cl_device_info what) {
  std::size_t n = 0;
  if (api().clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  api().clGetDeviceInfo(d, what, n, s.data(), nullptr);
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}
template <typename T>
T device_value(cl_device_id d, cl_device_info what, T fallback = T{}) {
  T v{};
  return api().clGetDeviceInfo(d, what, sizeof(T), &v, nullptr) == CL_SUCCESS ? v : fallback;
}
std::string platform_string(cl_platform_id p, cl_platform_info what) {
  std::size_t n = 0;
  if (api().clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  api().clGetPlatformInfo(p, what, n, s.data(), nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

// ------------------------------------------------------------------ buffers

class ClBuffer final : public BufferImpl {
 public:
  ClBuffer(cl_mem mem, std::size_t bytes, bool owned) : mem_(mem), bytes_(bytes), owned_(owned) {}
  ~ClBuffer() override {
    if (owned_) log_release(api().clReleaseMemObject(mem_), "clReleaseMemObject");
  }
  std::size_t size_bytes() const override { return bytes_; }
  void* native() const override { return mem_; }
  cl_mem mem() const { return mem_; }

 private:
  cl_mem mem_;
  std::size_t bytes_;
  bool owned_;
};

cl_mem mem_of(BufferImpl& b) { return static_cast<ClBuffer&>(b).mem(); }

class ClPinned final : public PinnedImpl {
 public:
  ClPinned(cl_mem mem, cl_command_queue q, void* ptr, std::size_t bytes) : mem_(mem), q_(q), ptr_(ptr), bytes_(bytes) {}
  ~ClPinned() override {
    log_release(api().clEnqueueUnmapMemObject(q_, mem_, ptr_, 0, nullptr, nullptr), "clEnqueueUnmapMemObject");
    log_release(api().clFinish(q_), "clFinish");
    log_release(api().clReleaseMemObject(mem_), "clReleaseMemObject");
  }
  void* data() const override { return ptr_; }
  std::size_t size_bytes() const override { return bytes_; }

 private:
  cl_mem mem_;
  cl_command_queue q_;
  void* ptr_;
  std::size_t bytes_;
};

// ------------------------------------------------------------------ events

// The native event is replaced by every record; a mutex guards it so that another
// thread may query, wait on or time the event meanwhile (each call works on the
// event of the record it saw, retained for the call).
class ClEvent final : public EventImpl {
 public:
  ~ClEvent() override {
    if (ev_) log_release(api().clReleaseEvent(ev_), "clReleaseEvent");
  }
  bool recorded() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return ev_ != nullptr;
  }
  void synchronize() override {
    Held ev(*this);
    AXLE_CL_CHECK(api().clWaitForEvents(1, &ev.ev), "clWaitForEvents", "waiting for an event");
  }
  bool query() override {
    Held ev(*this);
    cl_int status = 0;
    AXLE_CL_CHECK(api().clGetEventInfo(ev.ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(status), &status, nullptr),
                  "clGetEventInfo", "querying an event");
    if (status < 0) fail(status, "clGetEventInfo", "the work before this event failed");
    return status == CL_COMPLETE;
  }
  float elapsed_ms(EventImpl& start_impl) override {
    Held t0_ev(static_cast<ClEvent&>(start_impl)), t1_ev(*this);
    AXLE_CL_CHECK(api().clWaitForEvents(1, &t0_ev.ev), "clWaitForEvents", "waiting for the start event");
    AXLE_CL_CHECK(api().clWaitForEvents(1, &t1_ev.ev), "clWaitForEvents", "waiting for the end event");
    // A queue made without CL_QUEUE_PROFILING_ENABLE (only an adopted one can be) has
    // no timestamps: that is Unsupported, saying so, rather than a raw status.
    auto end_time = [](cl_event ev, const char* which) {
      cl_ulong t = 0;
      const cl_int st = api().clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof(t), &t, nullptr);
      if (st == CL_PROFILING_INFO_NOT_AVAILABLE) {
        cl_command_queue q = nullptr;
        cl_command_queue_properties props = 0;
        const bool unprofiled =
            api().clGetEventInfo(ev, CL_EVENT_COMMAND_QUEUE, sizeof(q), &q, nullptr) == CL_SUCCESS && q &&
            api().clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES, sizeof(props), &props, nullptr) == CL_SUCCESS &&
            !(props & CL_QUEUE_PROFILING_ENABLE);
        throw Unsupported(std::string("Event::elapsed_ms: the ") + which + " event has no device timestamps: " +
                              (unprofiled ? "it was recorded on a cl_command_queue adopted without "
                                            "CL_QUEUE_PROFILING_ENABLE; create that queue with "
                                            "CL_QUEUE_PROFILING_ENABLE, or record on a stream Axle created"
                                          : "the OpenCL driver keeps no profiling information for it"),
                          details(st, "clGetEventProfilingInfo"));
      }
      if (st != CL_SUCCESS) fail(st, "clGetEventProfilingInfo", std::string("reading the ") + which + " event's time");
      return t;
    };
    const cl_ulong t0 = end_time(t0_ev.ev, "start"), t1 = end_time(t1_ev.ev, "end");
    return static_cast<float>((static_cast<double>(t1) - static_cast<double>(t0)) * 1e-6);
  }
  void* native() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return ev_;
  }
  /// Replace the native event (takes ownership of `e`).
  void set(cl_event e) {
    cl_event old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old = ev_;
      ev_ = e;
    }
    if (old) log_release(api().clReleaseEvent(old), "clReleaseEvent");
  }
  /// The current native event, retained: the caller releases it.
  cl_event retain() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (ev_) api().clRetainEvent(ev_);
    return ev_;
  }

 private:
  struct Held {
    cl_event ev;
    explicit Held(const ClEvent& e) : ev(e.retain()) {}
    ~Held() {
      if (ev) log_release(api().clReleaseEvent(ev), "clReleaseEvent");
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
  };
  mutable std::mutex mu_;
  cl_event ev_ = nullptr;
};

// ------------------------------------------------------------------ programs and kernels

enum class ArgClass { Unknown, Global, Local, Value };

class ClDevice;

class ClKernel final : public KernelImpl {
 public:
  /// Takes ownership of `k`, also when the constructor throws.
  ClKernel(cl_kernel k, std::string name, Device dev, cl_device_id did) : k_(k), name_(std::move(name)), dev_(std::move(dev)) {
    try {
      describe(did);
    } catch (...) {
      log_release(api().clReleaseKernel(k_), "clReleaseKernel");
      throw;
    }
  }
  ~ClKernel() override { log_release(api().clReleaseKernel(k_), "clReleaseKernel"); }
  const std::string& name() const override { return name_; }
  unsigned num_args() const override { return num_args_; }
  std::size_t arg_size(unsigned i) const override { return i < sizes_.size() ? sizes_[i] : 0; }
  std::size_t max_work_group_size() const override { return max_wg_; }
  void* native() const override { return k_; }
  const Device& device() const override { return dev_; }

  cl_kernel handle() const { return k_; }
  ArgClass arg_class(unsigned i) const { return classes_[i]; }
  const std::string& arg_type(unsigned i) const { return types_[i]; }
  std::mutex mu;

 private:
  // Reads the argument count, work-group limit and argument kinds. A failing query
  // throws: a kernel that does not know its arguments would accept any launch.
  void describe(cl_device_id did) {
    const std::string what = "querying kernel '" + name_ + "'";
    cl_uint n = 0;
    AXLE_CL_CHECK(api().clGetKernelInfo(k_, CL_KERNEL_NUM_ARGS, sizeof(n), &n, nullptr), "clGetKernelInfo", what);
    num_args_ = n;
    AXLE_CL_CHECK(api().clGetKernelWorkGroupInfo(k_, did, CL_KERNEL_WORK_GROUP_SIZE, sizeof(max_wg_), &max_wg_, nullptr),
                  "clGetKernelWorkGroupInfo", what);
    classes_.assign(n, ArgClass::Unknown);
    sizes_.assign(n, 0);
    types_.assign(n, "");
    for (cl_uint i = 0; i < n; ++i) {
      const std::string arg_what = what + " argument " + std::to_string(i);
      cl_kernel_arg_address_qualifier aq = 0;
      cl_int st = api().clGetKernelArgInfo(k_, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof(aq), &aq, nullptr);
      if (st == CL_KERNEL_ARG_INFO_NOT_AVAILABLE) continue;  // a binary built without -cl-kernel-arg-info
      if (st != CL_SUCCESS) fail(st, "clGetKernelArgInfo", arg_what);
      std::size_t len = 0;
      std::string type;
      AXLE_CL_CHECK(api().clGetKernelArgInfo(k_, i, CL_KERNEL_ARG_TYPE_NAME, 0, nullptr, &len), "clGetKernelArgInfo",
                    arg_what);
      if (len) {
        type.resize(len);
        AXLE_CL_CHECK(api().clGetKernelArgInfo(k_, i, CL_KERNEL_ARG_TYPE_NAME, len, type.data(), nullptr),
                      "clGetKernelArgInfo", arg_what);
        while (!type.empty() && type.back() == '\0') type.pop_back();
      }
      types_[i] = type;
      const bool pointer = type.find('*') != std::string::npos;
      if (aq == CL_KERNEL_ARG_ADDRESS_LOCAL) classes_[i] = ArgClass::Local;
      else if (pointer) classes_[i] = ArgClass::Global;
      else {
        classes_[i] = ArgClass::Value;
        sizes_[i] = scalar_size(type);
      }
    }
  }
  static std::size_t scalar_size(const std::string& t) {
    static const std::map<std::string, std::size_t> kBase = {
        {"char", 1}, {"uchar", 1}, {"bool", 1}, {"short", 2}, {"ushort", 2}, {"half", 2}, {"int", 4},
        {"uint", 4}, {"float", 4}, {"long", 8}, {"ulong", 8}, {"double", 8}, {"size_t", 0}, {"ptrdiff_t", 0}};
    std::size_t digits = t.find_first_of("0123456789");
    std::string base = t.substr(0, digits);
    auto it = kBase.find(base);
    if (it == kBase.end() || it->second == 0) return 0;  // struct types and size_t: unknown here
    if (digits == std::string::npos) return it->second;
    int n = std::atoi(t.c_str() + digits);
    return it->second * (n == 3 ? 4 : static_cast<std::size_t>(n));
  }
  cl_kernel k_;
  std::string name_;
  Device dev_;
  unsigned num_args_ = 0;
  std::size_t max_wg_ = 0;
  std::vector<ArgClass> classes_;
  std::vector<std::size_t> sizes_;
  std::vector<std::string> types_;
};

class ClProgram final : public ProgramImpl {
 public:
  /// Takes ownership of `p`, also when the constructor throws.
  ClProgram(cl_program p, Device dev, cl_device_id did) : p_(p), dev_(std::move(dev)), did_(did) {
    try {
      read_kernel_names();
    } catch (...) {
      log_release(api().clReleaseProgram(p_), "clReleaseProgram");
      throw;
    }
  }
  ~ClProgram() override {
    kernels_.clear();
    log_release(api().clReleaseProgram(p_), "clReleaseProgram");
  }
  std::shared_ptr<KernelImpl> kernel(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = kernels_.find(name);
    if (it != kernels_.end()) return it->second;
    cl_int st = CL_SUCCESS;
    cl_kernel k = api().clCreateKernel(p_, name.c_str(), &st);
    if (st == CL_INVALID_KERNEL_NAME || (st == CL_SUCCESS && !k)) {
      std::string have;
      for (auto& n : names_) have += (have.empty() ? "" : ", ") + n;
      throw KernelNotFound("no kernel named '" + name + "' in the program (it has: " + (have.empty() ? "none" : have) + ")",
                           details(st, "clCreateKernel"));
    }
    if (st != CL_SUCCESS) fail(st, "clCreateKernel", "creating kernel '" + name + "'");
    auto kp = std::make_shared<ClKernel>(k, name, dev_, did_);
    kernels_.emplace(name, kp);
    return kp;
  }
  std::vector<std::string> kernel_names() const override { return names_; }
  std::vector<std::uint8_t> binary() const override {
    std::size_t size = 0;
    AXLE_CL_CHECK(api().clGetProgramInfo(p_, CL_PROGRAM_BINARY_SIZES, sizeof(size), &size, nullptr), "clGetProgramInfo",
                  "reading a program's binary size");
    if (size == 0) return {};  // the driver keeps no binary: nothing to cache
    std::vector<std::uint8_t> bin(size);
    unsigned char* ptr = bin.data();
    AXLE_CL_CHECK(api().clGetProgramInfo(p_, CL_PROGRAM_BINARIES, sizeof(ptr), &ptr, nullptr), "clGetProgramInfo",
                  "reading a program's binary");
    return bin;
  }
  void* native() const override { return p_; }
  const Device& device() const override { return dev_; }

 private:
  void read_kernel_names() {
    std::size_t n = 0;
    AXLE_CL_CHECK(api().clGetProgramInfo(p_, CL_PROGRAM_KERNEL_NAMES, 0, nullptr, &n), "clGetProgramInfo",
                  "listing the kernels of a program");
    if (n == 0) return;
    std::string s(n, '\0');
    AXLE_CL_CHECK(api().clGetProgramInfo(p_, CL_PROGRAM_KERNEL_NAMES, n, s.data(), nullptr), "clGetProgramInfo",
                  "listing the kernels of a program");
    while (!s.empty() && s.back() == '\0') s.pop_back();
    std::size_t pos = 0;
    while (pos < s.size()) {
      auto semi = s.find(';', pos);
      if (semi == std::string::npos) semi = s.size();
      if (semi > pos) names_.push_back(s.substr(pos, semi - pos));
      pos = semi + 1;
    }
  }

  cl_program p_;
  Device dev_;
  cl_device_id did_;
  std::vector<std::string> names_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ClKernel>> kernels_;
};

// ------------------------------------------------------------------ streams

// Queues alive on a device, so that Device::synchronize can wait for all of them.
struct QueueSet {
  std::mutex mu;
  std::vector<cl_command_queue> queues;
  void add(cl_command_queue q) {
    std::lock_guard<std::mutex> lock(mu);
    queues.push_back(q);
  }
  void remove(cl_command_queue q) {
    std::lock_guard<std::mutex> lock(mu);
    queues.erase(std::find(queues.begin(), queues.end(), q));
  }
};

class ClStream final : public StreamImpl {
 public:
  ClStream(cl_command_queue q, bool owned, std::shared_ptr<QueueSet> set, unsigned addr_align)
      : q_(q), owned_(owned), set_(std::move(set)), addr_align_(addr_align) {
    set_->add(q_);
  }
  ~ClStream() override {
    set_->remove(q_);
    log_release(api().clFinish(q_), "clFinish");
    if (owned_) log_release(api().clReleaseCommandQueue(q_), "clReleaseCommandQueue");
  }
  void copy_h2d(const void* host, BufferImpl& dst, std::size_t off, std::size_t bytes) override {
    AXLE_CL_CHECK(api().clEnqueueWriteBuffer(q_, mem_of(dst), CL_FALSE, off, bytes, host, 0, nullptr, nullptr),
                  "clEnqueueWriteBuffer", "host -> device copy of " + std::to_string(bytes) + " bytes");
  }
  void copy_d2h(BufferImpl& src, std::size_t off, void* host, std::size_t bytes) override {
    AXLE_CL_CHECK(api().clEnqueueReadBuffer(q_, mem_of(src), CL_FALSE, off, bytes, host, 0, nullptr, nullptr),
                  "clEnqueueReadBuffer", "device -> host copy of " + std::to_string(bytes) + " bytes");
  }
  void copy_d2d(BufferImpl& src, std::size_t so, BufferImpl& dst, std::size_t doff, std::size_t bytes) override {
    AXLE_CL_CHECK(api().clEnqueueCopyBuffer(q_, mem_of(src), mem_of(dst), so, doff, bytes, 0, nullptr, nullptr),
                  "clEnqueueCopyBuffer", "device -> device copy of " + std::to_string(bytes) + " bytes");
  }
  void fill(BufferImpl& dst, std::size_t off, std::size_t bytes, const void* pattern, std::size_t psize) override {
    AXLE_CL_CHECK(api().clEnqueueFillBuffer(q_, mem_of(dst), pattern, psize, off, bytes, 0, nullptr, nullptr),
                  "clEnqueueFillBuffer", "fill of " + std::to_string(bytes) + " bytes");
  }
  void launch(KernelImpl& kimpl, const Range& global, const Range& local, const std::vector<KernelArg>& args) override {
    auto& k = static_cast<ClKernel&>(kimpl);
    std::vector<cl_mem> subs;  // released after the enqueue; OpenCL keeps them alive while needed
    struct Release {
      std::vector<cl_mem>& v;
      ~Release() {
        for (cl_mem m : v) log_release(api().clReleaseMemObject(m), "clReleaseMemObject");
      }
    } release{subs};
    // A view at a non-zero offset is bound as a sub-buffer. OpenCL leaves a launch that
    // uses a buffer and a sub-buffer of it undefined, so when one buffer is bound more
    // than once and any of its bindings needs a sub-buffer, all of them get one.
    std::vector<char> as_sub(args.size(), 0);
    for (std::size_t i = 0; i < args.size(); ++i) {
      const KernelArg& a = args[i];
      if (a.kind != KernelArg::Kind::Buffer || a.offset_bytes == 0) continue;
      for (std::size_t j = 0; j < args.size(); ++j)
        if (args[j].kind == KernelArg::Kind::Buffer && args[j].buffer && a.buffer &&
            mem_of(args[j].buffer->impl()) == mem_of(a.buffer->impl()))
          as_sub[j] = 1;
    }
    std::lock_guard<std::mutex> lock(k.mu);
    for (cl_uint i = 0; i < args.size(); ++i) {
      const KernelArg& a = args[i];
      const ArgClass want = k.arg_class(i);
      auto arg = [&k, i] { return "kernel '" + k.name() + "' argument " + std::to_string(i); };  // on failure only
      const char* given = a.kind == KernelArg::Kind::Buffer ? "a buffer"
                          : a.kind == KernelArg::Kind::Local ? "local memory" : "a scalar";
      if ((want == ArgClass::Global && a.kind != KernelArg::Kind::Buffer) ||
          (want == ArgClass::Local && a.kind != KernelArg::Kind::Local) ||
          (want == ArgClass::Value && a.kind != KernelArg::Kind::Scalar))
        throw InvalidArgument(arg() + " is declared '" + k.arg_type(i) + "'" +
                              (want == ArgClass::Local ? " (local memory)" : "") + " but " + given + " was given");
      cl_int st = CL_SUCCESS;
      switch (a.kind) {
        case KernelArg::Kind::Buffer: {
          cl_mem m = mem_of(a.buffer->impl());
          const std::size_t len =
              a.view_bytes == KernelArg::kWhole ? a.buffer->size_bytes() - a.offset_bytes : a.view_bytes;
          if (len == 0) {
            m = nullptr;  // an empty view: the kernel gets a null pointer (OpenCL 1.2, clSetKernelArg)
          } else if (as_sub[i]) {
            if (addr_align_ && a.offset_bytes % addr_align_ != 0)
              throw InvalidArgument(arg() + ": a view at byte offset " + std::to_string(a.offset_bytes) +
                                    " is not aligned to this device's " + std::to_string(addr_align_) +
                                    "-byte sub-buffer alignment; pass the whole buffer and the offset as a scalar");
            // The sub-buffer covers exactly the view, so the kernel cannot reach past it.
            cl_buffer_region region{a.offset_bytes, len};
            cl_mem sub = api().clCreateSubBuffer(m, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &st);
            if (st != CL_SUCCESS) fail(st, "clCreateSubBuffer", arg() + ": sub-buffer for a view");
            subs.push_back(sub);
            m = sub;
          }
          st = api().clSetKernelArg(k.handle(), i, sizeof(cl_mem), &m);
          break;
        }
        case KernelArg::Kind::Local:
          st = api().clSetKernelArg(k.handle(), i, a.size, nullptr);
          break;
        case KernelArg::Kind::Scalar:
          st = api().clSetKernelArg(k.handle(), i, a.size, a.value);
          break;
      }
      if (st != CL_SUCCESS) fail(st, "clSetKernelArg", arg());
    }
    std::size_t g[3] = {global[0], global[1], global[2]};
    std::size_t l[3] = {local[0], local[1], local[2]};
    AXLE_CL_CHECK(api().clEnqueueNDRangeKernel(q_, k.handle(), global.dims(), nullptr, g, local.empty() ? nullptr : l,
                                               0, nullptr, nullptr),
                  "clEnqueueNDRangeKernel", "launching kernel '" + k.name() + "' over " + global.str() +
                                                 (local.empty() ? "" : " in groups of " + local.str()));
  }
  void record(EventImpl& e) override {
    cl_event ev = nullptr;
    AXLE_CL_CHECK(api().clEnqueueMarkerWithWaitList(q_, 0, nullptr, &ev), "clEnqueueMarkerWithWaitList", "recording an event");
    // Submit what the event refers to: another queue may wait on it, and polling it
    // (query) must see it complete. OpenCL 1.2, 5.13, requires the flush for both.
    const cl_int st = api().clFlush(q_);
    if (st != CL_SUCCESS) {
      log_release(api().clReleaseEvent(ev), "clReleaseEvent");
      fail(st, "clFlush", "submitting the work before an event");
    }
    static_cast<ClEvent&>(e).set(ev);
  }
  void wait(EventImpl& e) override {
    cl_event ev = static_cast<ClEvent&>(e).retain();
    const cl_int st = api().clEnqueueBarrierWithWaitList(q_, 1, &ev, nullptr);
    log_release(api().clReleaseEvent(ev), "clReleaseEvent");
    if (st != CL_SUCCESS) fail(st, "clEnqueueBarrierWithWaitList", "making a stream wait for an event");
  }
  void synchronize() override { AXLE_CL_CHECK(api().clFinish(q_), "clFinish", "synchronizing a stream"); }
  void* native() const override { return q_; }

 private:
  cl_command_queue q_;
  bool owned_;
  std::shared_ptr<QueueSet> set_;
  unsigned addr_align_;
};

// ------------------------------------------------------------------ device

class ClDevice final : public DeviceImpl {
 public:
  ClDevice(cl_platform_id platform, cl_device_id dev, int index) : platform_(platform), dev_(dev) {
    cl_int st = CL_SUCCESS;
    ctx_ = api().clCreateContext(nullptr, 1, &dev_, nullptr, nullptr, &st);
    if (st != CL_SUCCESS) fail(st, "clCreateContext", "creating a context for OpenCL device " + std::to_string(index));
    helper_q_ = api().clCreateCommandQueue(ctx_, dev_, 0, &st);
    if (st != CL_SUCCESS) {
      api().clReleaseContext(ctx_);
      fail(st, "clCreateCommandQueue", "creating a queue for OpenCL device " + std::to_string(index));
    }
    fill_info(index);
  }
  ~ClDevice() override {
    std::lock_guard<std::mutex> lock(program_cache_mutex);
    program_cache.clear();
    log_release(api().clReleaseCommandQueue(helper_q_), "clReleaseCommandQueue");
    log_release(api().clReleaseContext(ctx_), "clReleaseContext");
  }

  const DeviceInfo& info() const override { return info_; }

  std::unique_ptr<BufferImpl> alloc(std::size_t bytes) override {
    cl_int st = CL_SUCCESS;
    cl_mem m = api().clCreateBuffer(ctx_, CL_MEM_READ_WRITE, bytes, nullptr, &st);
    if (st != CL_SUCCESS)
      fail(st, "clCreateBuffer", "allocating " + std::to_string(bytes) + " bytes on " + info_.backend + ":" +
                                     std::to_string(info_.index));
    return std::make_unique<ClBuffer>(m, bytes, true);
  }
  std::unique_ptr<BufferImpl> adopt_buffer(void* native, std::size_t) override {
    cl_mem m = static_cast<cl_mem>(native);
    cl_context c = nullptr;
    std::size_t size = 0;
    AXLE_CL_CHECK(api().clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof(c), &c, nullptr), "clGetMemObjectInfo",
                  "adopting a cl_mem");
    if (c != ctx_)
      throw InvalidArgument("adopting a cl_mem of another context: Axle's opencl:" + std::to_string(info_.index) +
                            " has its own context (see axle::opencl::context)");
    AXLE_CL_CHECK(api().clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof(size), &size, nullptr), "clGetMemObjectInfo",
                  "adopting a cl_mem");
    return std::make_unique<ClBuffer>(m, size, false);
  }
  std::unique_ptr<PinnedImpl> alloc_pinned(std::size_t bytes) override {
    cl_int st = CL_SUCCESS;
    cl_mem m = api().clCreateBuffer(ctx_, CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE, bytes, nullptr, &st);
    if (st != CL_SUCCESS) fail(st, "clCreateBuffer", "allocating " + std::to_string(bytes) + " bytes of pinned memory");
    void* p = api().clEnqueueMapBuffer(helper_q_, m, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, nullptr,
                                       nullptr, &st);
    if (st != CL_SUCCESS) {
      api().clReleaseMemObject(m);
      fail(st, "clEnqueueMapBuffer", "mapping " + std::to_string(bytes) + " bytes of pinned memory");
    }
    return std::make_unique<ClPinned>(m, helper_q_, p, bytes);
  }
  std::unique_ptr<StreamImpl> create_stream() override {
    cl_int st = CL_SUCCESS;
    cl_command_queue q = api().clCreateCommandQueue(ctx_, dev_, CL_QUEUE_PROFILING_ENABLE, &st);
    if (st != CL_SUCCESS) fail(st, "clCreateCommandQueue", "creating a stream");
    return std::make_unique<ClStream>(q, true, queues_, addr_align_);
  }
  std::unique_ptr<StreamImpl> adopt_stream(void* native) override {
    auto q = static_cast<cl_command_queue>(native);
    const std::string self = "opencl:" + std::to_string(info_.index) + " ('" + info_.name + "')";
    cl_context c = nullptr;
    AXLE_CL_CHECK(api().clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof(c), &c, nullptr), "clGetCommandQueueInfo",
                  "adopting a cl_command_queue");
    if (c != ctx_)
      throw InvalidArgument("adopting a cl_command_queue of another context: " + self +
                            " has its own; create the queue on axle::opencl::context(device)");
    cl_device_id d = nullptr;
    AXLE_CL_CHECK(api().clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof(d), &d, nullptr), "clGetCommandQueueInfo",
                  "adopting a cl_command_queue");
    if (d != dev_)
      throw InvalidArgument("adopting a cl_command_queue of another device ('" + device_string(d, CL_DEVICE_NAME) +
                            "'), not of " + self + "; create the queue on axle::opencl::device_id(device)");
    cl_command_queue_properties props = 0;
    AXLE_CL_CHECK(api().clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES, sizeof(props), &props, nullptr),
                  "clGetCommandQueueInfo", "adopting a cl_command_queue");
    if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
      throw InvalidArgument("adopting an out-of-order cl_command_queue (CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) on " +
                            self + ": an axle::Stream runs its work in order; create the queue without that property");
    return std::make_unique<ClStream>(q, false, queues_, addr_align_);
  }
  std::unique_ptr<EventImpl> create_event() override { return std::make_unique<ClEvent>(); }
  void synchronize() override {
    std::lock_guard<std::mutex> lock(queues_->mu);
    for (cl_command_queue q : queues_->queues) AXLE_CL_CHECK(api().clFinish(q), "clFinish", "synchronizing the device");
    AXLE_CL_CHECK(api().clFinish(helper_q_), "clFinish", "synchronizing the device");
  }

  std::string native_options(const BuildOptions& o) const override {
    std::string s = "-cl-std=CL1.2 -cl-kernel-arg-info";  // defines travel in the source (CompileRequest::defines)
    if (!o.flags.empty()) s += " " + o.flags;
    return s;
  }
  std::string compiler_id() const override { return platform_version_ + " | " + info_.driver_version + " | " + info_.version; }
  std::string target_arch(const CompileRequest&) const override { return info_.architecture; }

  std::shared_ptr<ProgramImpl> compile(const CompileRequest& req) override {
    std::string text;
    if (req.kind == SourceKind::CUDA)
      throw Unsupported("'" + req.name + "' is native CUDA source; the OpenCL backend builds portable (Axle dialect) "
                        "or OpenCL C sources only. Select a CUDA device or port the kernel to the Axle dialect.",
                        Error::Details{"opencl", 0, "", "build"});
    text = req.defines;
    if (req.kind == SourceKind::Portable) {
      text += line_directive(1, "axle_opencl.h");
      text += embedded::runtime_resource("axle_opencl.h");
      text += "\n";
    }
    text += req.text;  // starts with #line 1 "<name>"
    const char* src = text.c_str();
    std::size_t len = text.size();
    cl_int st = CL_SUCCESS;
    cl_program p = api().clCreateProgramWithSource(ctx_, 1, &src, &len, &st);
    if (st != CL_SUCCESS) fail(st, "clCreateProgramWithSource", "creating program '" + req.name + "'");
    st = api().clBuildProgram(p, 1, &dev_, req.options.c_str(), nullptr, nullptr);
    if (st != CL_SUCCESS) {
      std::string log = build_log(p);
      api().clReleaseProgram(p);
      throw BuildError("building '" + req.name + "' for opencl:" + std::to_string(info_.index) + " ('" + info_.name +
                           "') failed",
                       details(st, "clBuildProgram"), log);
    }
    return std::make_shared<ClProgram>(p, handle(), dev_);
  }
  std::shared_ptr<ProgramImpl> load_binary(const CompileRequest& req, const std::vector<std::uint8_t>& bin) override {
    const unsigned char* ptr = bin.data();
    std::size_t len = bin.size();
    cl_int bin_status = CL_SUCCESS, st = CL_SUCCESS;
    cl_program p = api().clCreateProgramWithBinary(ctx_, 1, &dev_, &len, &ptr, &bin_status, &st);
    // A binary the driver rejects is rebuilt from source (nullptr); running out of
    // memory is no reason to discard a good cache entry, and is thrown.
    if (st != CL_SUCCESS || bin_status != CL_SUCCESS) {
      if (p) log_release(api().clReleaseProgram(p), "clReleaseProgram");
      if (exhausted(st)) fail(st, "clCreateProgramWithBinary", "loading cached program '" + req.name + "'");
      return nullptr;
    }
    st = api().clBuildProgram(p, 1, &dev_, req.options.c_str(), nullptr, nullptr);
    if (st != CL_SUCCESS) {
      log_release(api().clReleaseProgram(p), "clReleaseProgram");
      if (exhausted(st)) fail(st, "clBuildProgram", "loading cached program '" + req.name + "'");
      return nullptr;
    }
    return std::make_shared<ClProgram>(p, handle(), dev_);
  }
  void* native_context() const override { return ctx_; }
  void* native_device() const override { return dev_; }

 private:
  std::string build_log(cl_program p) {
    std::size_t n = 0;
    api().clGetProgramBuildInfo(p, dev_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    if (n) api().clGetProgramBuildInfo(p, dev_, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
    while (!log.empty() && log.back() == '\0') log.pop_back();
    return log;
  }

  void fill_info(int index) {
    DeviceInfo& i = info_;
    i.backend = "opencl";
    i.index = index;
    i.name = device_string(dev_, CL_DEVICE_NAME);
    i.vendor = device_string(dev_, CL_DEVICE_VENDOR);
    i.driver_version = device_string(dev_, CL_DRIVER_VERSION);
    i.version = device_string(dev_, CL_DEVICE_VERSION);
    i.platform = platform_string(platform_, CL_PLATFORM_NAME);
    platform_version_ = platform_string(platform_, CL_PLATFORM_VERSION);
    const auto type = device_value<cl_device_type>(dev_, CL_DEVICE_TYPE);
    i.type = (type & CL_DEVICE_TYPE_GPU) ? DeviceType::GPU
             : (type & CL_DEVICE_TYPE_CPU) ? DeviceType::CPU
             : (type & CL_DEVICE_TYPE_ACCELERATOR) ? DeviceType::Accelerator : DeviceType::Other;
    i.compute_units = device_value<cl_uint>(dev_, CL_DEVICE_MAX_COMPUTE_UNITS);
    i.max_clock_mhz = device_value<cl_uint>(dev_, CL_DEVICE_MAX_CLOCK_FREQUENCY);
    i.global_mem_bytes = device_value<cl_ulong>(dev_, CL_DEVICE_GLOBAL_MEM_SIZE);
    i.max_alloc_bytes = device_value<cl_ulong>(dev_, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    i.local_mem_bytes = device_value<cl_ulong>(dev_, CL_DEVICE_LOCAL_MEM_SIZE);
    i.cache_bytes = device_value<cl_ulong>(dev_, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE);
    i.max_work_group_size = device_value<std::size_t>(dev_, CL_DEVICE_MAX_WORK_GROUP_SIZE);
    std::size_t sizes[3] = {0, 0, 0};
    api().clGetDeviceInfo(dev_, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof(sizes), sizes, nullptr);
    std::copy(sizes, sizes + 3, i.max_work_item_sizes);
    i.preferred_vector_width_float = device_value<cl_uint>(dev_, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, 1);
    const std::string ext = device_string(dev_, CL_DEVICE_EXTENSIONS);
    i.fp16 = ext.find("cl_khr_fp16") != std::string::npos;
    i.fp64 = ext.find("cl_khr_fp64") != std::string::npos ||
             device_value<cl_device_fp_config>(dev_, CL_DEVICE_DOUBLE_FP_CONFIG) != 0;
    i.unified_memory = device_value<cl_bool>(dev_, CL_DEVICE_HOST_UNIFIED_MEMORY) == CL_TRUE;
    addr_align_ = device_value<cl_uint>(dev_, CL_DEVICE_MEM_BASE_ADDR_ALIGN) / 8;
    i.architecture = i.name;
    if (ext.find("cl_nv_device_attribute_query") != std::string::npos) {
      const cl_uint major = device_value<cl_uint>(dev_, 0x4000), minor = device_value<cl_uint>(dev_, 0x4001);
      i.architecture = "sm_" + std::to_string(major) + std::to_string(minor);
      i.sub_group_size = device_value<cl_uint>(dev_, 0x4003);  // CL_DEVICE_WARP_SIZE_NV
    } else if (ext.find("cl_amd_device_attribute_query") != std::string::npos) {
      i.sub_group_size = device_value<cl_uint>(dev_, 0x4043);  // CL_DEVICE_WAVEFRONT_WIDTH_AMD
    } else if (auto h = i.version.find("HSTR: "); h != std::string::npos) {
      i.architecture = i.version.substr(h + 6);  // PoCL: the LLVM target, e.g. pthread-x86_64-...-skylake-avx512
    }
  }

  cl_platform_id platform_;
  cl_device_id dev_;
  cl_context ctx_ = nullptr;
  cl_command_queue helper_q_ = nullptr;
  unsigned addr_align_ = 0;
  std::shared_ptr<QueueSet> queues_ = std::make_shared<QueueSet>();
  std::string platform_version_;
  DeviceInfo info_;
};

// ------------------------------------------------------------------ backend

// PoCL's CPU device: pin its worker threads, one per core (POCL_AFFINITY=1), unless
// the user chose. Unpinned, the scheduler often wakes both workers on one core and a
// millisecond-scale launch runs at half speed until it migrates one (bimodal timings
// on 2-core machines). PoCL pins worker i to CPU i and, in recent versions, aborts
// when that fails, so this is done only when the process may run on every online
// CPU (no taskset or cpuset restriction). PoCL reads the variable when the ICD
// loader first initialises it (the first clGetPlatformIDs); other drivers ignore it.
//
// It is set while the library is loaded (a static initialiser, before main when the
// program links Axle), when no other thread of the program can be reading the
// environment, never later: setenv races with getenv in other threads.
void pin_pocl_workers() {
#ifdef __linux__
  if (std::getenv("POCL_AFFINITY")) return;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online <= 1 || online > CPU_SETSIZE || CPU_COUNT(&allowed) != online) return;
  for (long c = 0; c < online; ++c)
    if (!CPU_ISSET(c, &allowed)) return;
  ::setenv("POCL_AFFINITY", "1", /*overwrite=*/0);
#endif
}

[[maybe_unused]] const bool g_pocl_pinned = (pin_pocl_workers(), true);

class ClBackend final : public Backend {
 public:
  ClBackend() {
    g_api = cl::load(reason_);
    if (!g_api) return;
    cl_uint np = 0;
    cl_int st = api().clGetPlatformIDs(0, nullptr, &np);
    if (st == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || np == 0) {
      reason_ = "the OpenCL loader found no platform (no ICD installed; e.g. apt-get install pocl-opencl-icd)";
      return;
    }
    if (st != CL_SUCCESS) {
      reason_ = std::string("clGetPlatformIDs failed: ") + cl::error_name(st);
      return;
    }
    std::vector<cl_platform_id> platforms(np);
    api().clGetPlatformIDs(np, platforms.data(), nullptr);
    for (cl_platform_id p : platforms) {
      cl_uint nd = 0;
      if (api().clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
      std::vector<cl_device_id> ds(nd);
      api().clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, ds.data(), nullptr);
      for (cl_device_id d : ds) found_.push_back({p, d});
    }
    if (found_.empty()) {
      reason_ = "no OpenCL device on any of " + std::to_string(np) + " platform(s)";
      return;
    }
    devices_.resize(found_.size());
    available_ = true;
  }
  const std::string& name() const override { return name_; }
  bool available() const override { return available_; }
  const std::string& reason() const override { return reason_; }
  int device_count() const override { return static_cast<int>(found_.size()); }
  std::shared_ptr<DeviceImpl> device(int index) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& d = devices_.at(static_cast<std::size_t>(index));
    if (!d) d = std::make_shared<ClDevice>(found_[index].first, found_[index].second, index);
    return d;
  }

 private:
  std::string name_ = "opencl";
  bool available_ = false;
  std::string reason_;
  std::vector<std::pair<cl_platform_id, cl_device_id>> found_;
  std::mutex mu_;
  std::vector<std::shared_ptr<DeviceImpl>> devices_;
};

}  // namespace

std::unique_ptr<Backend> make_opencl_backend() { return std::make_unique<ClBackend>(); }

}  // namespace detail
}  // namespace axle
