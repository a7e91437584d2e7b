// The CUDA backend: the backend interface (runtime/src/backend/backend.hpp) on the
// CUDA driver API, loaded at run time (cuda_api.hpp).
//
// Ownership:
//  - CudaBackend owns one CudaDevice per CUDA device, created on first request.
//  - CudaDevice retains the device's primary context for its lifetime and releases it
//    in its destructor. Every other object keeps its CudaDevice alive through a
//    shared_ptr, so the context outlives every stream, buffer, event and module.
//  - CudaBuffer / CudaPinned / CudaStream / CudaEvent / CudaProgram own their native
//    handle unless adopted (CudaBuffer/CudaStream made by adopt_*), which are never freed.
//  - CudaKernel holds its CudaProgram (the CUmodule must outlive the CUfunction).
// Contexts: every entry point that calls the driver makes the primary context current
// on the calling thread for the call only (cuda::ContextScope: push, then pop), so
// objects may be used from any thread and the caller's own current context is left as
// it was. adopt_stream accepts only streams of the primary context (cuStreamGetCtx).
// Thread-safety: as the interface requires. Device-level calls are safe from any thread;
// one stream must not be used by two threads at once; CudaKernel's lazily set
// dynamic-shared-memory attribute is guarded by a mutex.
// Destructors never throw; status CUDA_ERROR_DEINITIALIZED (driver shut down at process
// exit) is ignored, other failures are logged to the "cuda" logger.
#pragma once

#include <cuda.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/backend.hpp"

namespace axle::detail::cuda {

class CudaDevice;

class CudaBuffer final : public BufferImpl {
 public:
  CudaBuffer(std::shared_ptr<CudaDevice> dev, CUdeviceptr ptr, std::size_t bytes, bool owned)
      : dev_(std::move(dev)), ptr_(ptr), bytes_(bytes), owned_(owned) {}
  ~CudaBuffer() override;
  std::size_t size_bytes() const override { return bytes_; }
  void* native() const override { return reinterpret_cast<void*>(ptr_); }
  CUdeviceptr ptr() const { return ptr_; }

 private:
  std::shared_ptr<CudaDevice> dev_;
  CUdeviceptr ptr_;
  std::size_t bytes_;
  bool owned_;
};

class CudaPinned final : public PinnedImpl {
 public:
  CudaPinned(std::shared_ptr<CudaDevice> dev, void* p, std::size_t bytes)
      : dev_(std::move(dev)), p_(p), bytes_(bytes) {}
  ~CudaPinned() override;
  void* data() const override { return p_; }
  std::size_t size_bytes() const override { return bytes_; }

 private:
  std::shared_ptr<CudaDevice> dev_;
  void* p_;
  std::size_t bytes_;
};

class CudaEvent final : public EventImpl {
 public:
  CudaEvent(std::shared_ptr<CudaDevice> dev, CUevent ev) : dev_(std::move(dev)), ev_(ev) {}
  ~CudaEvent() override;
  bool recorded() const override { return recorded_.load(std::memory_order_acquire); }
  void synchronize() override;
  bool query() override;
  float elapsed_ms(EventImpl& start) override;
  void* native() const override { return ev_; }
  CUevent handle() const { return ev_; }
  // The CUevent itself is re-recorded in place (cuEventRecord), which the driver allows
  // while other threads query it; only this flag is Axle's, hence atomic.
  void mark_recorded() { recorded_.store(true, std::memory_order_release); }

 private:
  std::shared_ptr<CudaDevice> dev_;
  CUevent ev_;
  std::atomic<bool> recorded_{false};
};

class CudaProgram;

class CudaKernel final : public KernelImpl {
 public:
  CudaKernel(std::shared_ptr<CudaProgram> prog, CUfunction fn, std::string name);
  const std::string& name() const override { return name_; }
  unsigned num_args() const override { return static_cast<unsigned>(param_sizes_.size()); }
  std::size_t arg_size(unsigned i) const override { return i < param_sizes_.size() ? param_sizes_[i] : 0; }
  std::size_t max_work_group_size() const override { return max_threads_; }
  void* native() const override { return fn_; }
  const Device& device() const override;
  CUfunction function() const { return fn_; }
  CudaDevice& cuda_device() const;
  /// Raise the function's dynamic shared memory limit to at least `bytes` (> 48 KiB).
  void ensure_dynamic_shared(std::size_t bytes);
  std::size_t static_shared() const { return static_shared_; }
  /// Cluster launches: checks that the device has clusters, that `cluster` agrees with
  /// the kernel's compile-time cluster shape (if it has one), allows a non-portable size
  /// (> 8) where the device does, and that at least one cluster of `block`-thread
  /// groups with `shared` dynamic bytes each can be scheduled (cached per shape).
  /// Throws Unsupported or InvalidArgument naming what is wrong. Returns whether the
  /// launch must pass the cluster shape (false: the kernel's compile-time shape applies).
  /// The device's context must be current.
  bool prepare_cluster(const unsigned block[3], const unsigned cluster[3], std::size_t shared);
  /// The checks of prepare_cluster that do not depend on the block (no occupancy).
  bool check_cluster(const unsigned cluster[3]);
  /// cuOccupancyMaxActiveClusters for this shape after check_cluster (the context must
  /// be current); 0 when none fits.
  int max_active_clusters(const unsigned block[3], const unsigned cluster[3], std::size_t shared);

 private:
  /// The kernel's compile-time cluster shape (__cluster_dims__), {0,0,0} when none.
  void required_cluster(unsigned out[3]);
  /// cuOccupancyMaxActiveClusters (0 when none fits); `set_dims` passes the shape.
  int active_clusters(const unsigned block[3], const unsigned cluster[3], std::size_t shared, bool set_dims);

  std::shared_ptr<CudaProgram> prog_;
  CUfunction fn_;
  std::string name_;
  std::vector<std::size_t> param_sizes_;  ///< 0 = size unknown
  std::size_t max_threads_ = 0;
  std::size_t static_shared_ = 0;
  std::mutex mu_;
  std::size_t dyn_shared_limit_ = 48 * 1024;
  bool non_portable_cluster_ = false;
  bool required_cluster_known_ = false;
  unsigned required_cluster_[3] = {0, 0, 0};
  /// Cluster shapes (block x, y, z, cluster x, y, z, shared) already found schedulable.
  std::vector<std::array<std::size_t, 7>> cluster_ok_;
};

/// A cuLaunchKernelEx configuration; `attr` receives the cluster attribute when
/// `set_cluster` (cfg then points at it).
void fill_launch_config(CUlaunchConfig& cfg, CUlaunchAttribute& attr, const unsigned grid[3], const unsigned block[3],
                        const unsigned cluster[3], std::size_t shared, CUstream stream, bool set_cluster);

class CudaProgram final : public ProgramImpl, public std::enable_shared_from_this<CudaProgram> {
 public:
  CudaProgram(std::shared_ptr<CudaDevice> dev, CUmodule mod, std::vector<std::uint8_t> binary, std::string source);
  ~CudaProgram() override;
  std::shared_ptr<KernelImpl> kernel(const std::string& name) override;
  std::vector<std::string> kernel_names() const override;
  std::vector<std::uint8_t> binary() const override { return binary_; }
  void* native() const override { return mod_; }
  const Device& device() const override { return handle_; }
  CudaDevice& cuda_device() const { return *dev_; }
  /// Parameter count of kernel `name` parsed from the source (-1 when not found);
  /// used only when the driver lacks cuFuncGetParamInfo.
  int source_param_count(const std::string& name) const;

 private:
  std::shared_ptr<CudaDevice> dev_;
  Device handle_;
  CUmodule mod_;
  std::vector<std::uint8_t> binary_;
  std::string source_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::weak_ptr<KernelImpl>>> kernels_;
};

class CudaStream final : public StreamImpl {
 public:
  CudaStream(std::shared_ptr<CudaDevice> dev, CUstream s, bool owned) : dev_(std::move(dev)), s_(s), owned_(owned) {}
  ~CudaStream() override;
  void copy_h2d(const void* host, BufferImpl& dst, std::size_t dst_offset, std::size_t bytes) override;
  void copy_d2h(BufferImpl& src, std::size_t src_offset, void* host, std::size_t bytes) override;
  void copy_d2d(BufferImpl& src, std::size_t src_offset, BufferImpl& dst, std::size_t dst_offset,
                std::size_t bytes) override;
  void fill(BufferImpl& dst, std::size_t offset, std::size_t bytes, const void* pattern,
            std::size_t pattern_size) override;
  void launch(KernelImpl& kernel, const Range& global, const Range& local,
              const std::vector<KernelArg>& args) override;
  void launch_cluster(KernelImpl& kernel, const Range& global, const Range& local, const Range& cluster,
                      const std::vector<KernelArg>& args) override;
  void record(EventImpl& event) override;
  void wait(EventImpl& event) override;
  void synchronize() override;
  void* native() const override { return s_; }

 private:
  void launch_impl(CudaKernel& k, const Range& global, const Range& local, const Range* cluster,
                   const std::vector<KernelArg>& args);

  std::shared_ptr<CudaDevice> dev_;
  CUstream s_;
  bool owned_;
};

class CudaDevice final : public DeviceImpl {
 public:
  /// Retains the primary context of `ordinal`. Throws on failure.
  CudaDevice(int ordinal, const std::string& backend_name);
  ~CudaDevice() override;

  const DeviceInfo& info() const override { return info_; }
  std::unique_ptr<BufferImpl> alloc(std::size_t bytes) override;
  std::unique_ptr<BufferImpl> adopt_buffer(void* native, std::size_t bytes) override;
  std::unique_ptr<PinnedImpl> alloc_pinned(std::size_t bytes) override;
  std::unique_ptr<StreamImpl> create_stream() override;
  std::unique_ptr<StreamImpl> adopt_stream(void* native) override;
  std::unique_ptr<EventImpl> create_event() override;
  void synchronize() override;

  std::string native_options(const BuildOptions& options) const override;
  std::string compiler_id() const override;
  std::string target_arch(const CompileRequest& req) const override;
  std::shared_ptr<ProgramImpl> compile(const CompileRequest& req) override;
  std::shared_ptr<ProgramImpl> load_binary(const CompileRequest& req,
                                           const std::vector<std::uint8_t>& binary) override;

  void* native_context() const override { return ctx_; }
  void* native_device() const override { return reinterpret_cast<void*>(static_cast<std::intptr_t>(dev_)); }

  CUcontext context() const { return ctx_; }
  CUdevice ordinal() const { return dev_; }
  int cc_major() const { return cc_major_; }
  int cc_minor() const { return cc_minor_; }
  unsigned max_grid(unsigned d) const { return max_grid_[d]; }
  std::size_t max_shared_optin() const { return shared_optin_; }
  /// The built-in fill kernel (loaded on first use).
  CUfunction fill_function();
  std::shared_ptr<CudaDevice> self() { return std::static_pointer_cast<CudaDevice>(shared_from_this()); }

 private:
  std::shared_ptr<ProgramImpl> load_module(const CompileRequest& req, std::vector<std::uint8_t> binary,
                                           bool throw_on_reject, const std::string& arch);

  CUdevice dev_ = 0;
  CUcontext ctx_ = nullptr;
  DeviceInfo info_;
  int cc_major_ = 0, cc_minor_ = 0;
  unsigned max_grid_[3] = {0, 0, 0};
  std::size_t shared_optin_ = 0;
  std::mutex mu_;
  CUmodule fill_module_ = nullptr;
  CUfunction fill_fn_ = nullptr;
};

}  // namespace axle::detail::cuda
