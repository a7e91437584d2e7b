// CUDA backend implementation (see cuda_backend.hpp).
#include "cuda_backend.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <thread>

#include "cuda_api.hpp"
#include "log.hpp"
#include "nvrtc_compile.hpp"

namespace axle::detail {
namespace cuda {
namespace {

// The fill kernel's PTX (fill.ptx, embedded by CMake at configure time).
const char kFillPtx[] =
#include "cuda_fill_ptx.inc"
    ;

constexpr std::size_t kDefaultDynamicShared = 48 * 1024;
constexpr std::size_t kLocalAlign = 16;

const DriverApi& api() { return driver(); }

Error::Details details(const char* call, CUresult r = CUDA_SUCCESS) {
  return Error::Details{"cuda", static_cast<long long>(r), r == CUDA_SUCCESS ? "" : status_name(r), call};
}

int attr(CUdevice dev, CUdevice_attribute a) {
  int v = 0;
  check(api().cuDeviceGetAttribute, "cuDeviceGetAttribute", "device attribute " + std::to_string(a), &v, a, dev);
  return v;
}

std::string version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

CudaBuffer& as_cuda(BufferImpl& b) { return static_cast<CudaBuffer&>(b); }
CudaEvent& as_cuda(EventImpl& e) { return static_cast<CudaEvent&>(e); }

// ---- kernel signatures from source text (used only when the driver cannot enumerate
// functions or report parameters: drivers before CUDA 12.4) ----

// The text with comments, string literals and preprocessor lines blanked out.
std::string strip_source(const std::string& s) {
  std::string out(s.size(), ' ');
  bool line_start = true;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\n') {
      out[i++] = '\n';
      line_start = true;
      continue;
    }
    if (line_start && c == '#') {  // preprocessor line (with continuations)
      while (i < s.size() && !(s[i] == '\n' && s[i - 1] != '\\')) ++i;
      continue;
    }
    if (!std::isspace(static_cast<unsigned char>(c))) line_start = false;
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '/') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      const auto e = s.find("*/", i + 2);
      for (std::size_t j = i; j < std::min(s.size(), e == std::string::npos ? s.size() : e + 2); ++j)
        if (s[j] == '\n') out[j] = '\n';
      i = e == std::string::npos ? s.size() : e + 2;
    } else if (c == '"' || c == '\'') {
      ++i;
      while (i < s.size() && s[i] != c) i += (s[i] == '\\') ? 2 : 1;
      ++i;
    } else {
      out[i] = c;
      ++i;
    }
  }
  return out;
}

bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

struct KernelSig {
  std::string name;
  int params = 0;
};

// Kernels: AXLE_KERNEL or __global__, then `void`, then the first identifier followed by
// '(' that is not an attribute macro; parameters are its top-level commas + 1.
std::vector<KernelSig> parse_kernels(const std::string& source) {
  static const char* const kAttrs[] = {"__launch_bounds__", "AXLE_REQD_WG", "__attribute__", "__cluster_dims__",
                                       "__maxnreg__", "__align__"};
  const std::string s = strip_source(source);
  std::vector<KernelSig> out;
  auto word_at = [&](std::size_t p, const char* w) {
    const std::size_t n = std::strlen(w);
    return s.compare(p, n, w) == 0 && (p == 0 || !is_ident(s[p - 1])) && (p + n >= s.size() || !is_ident(s[p + n]));
  };
  for (std::size_t p = 0; p < s.size(); ++p) {
    if (!(word_at(p, "AXLE_KERNEL") || word_at(p, "__global__"))) continue;
    std::size_t q = p;
    while (q < s.size() && !word_at(q, "void") && s[q] != ';' && s[q] != '{') ++q;
    if (q >= s.size() || !word_at(q, "void")) continue;
    q += 4;
    std::string name;
    while (q < s.size()) {
      while (q < s.size() && std::isspace(static_cast<unsigned char>(s[q]))) ++q;
      std::size_t b = q;
      while (q < s.size() && is_ident(s[q])) ++q;
      std::string id = s.substr(b, q - b);
      while (q < s.size() && std::isspace(static_cast<unsigned char>(s[q]))) ++q;
      if (id.empty() || q >= s.size() || s[q] != '(') break;
      if (std::find_if(std::begin(kAttrs), std::end(kAttrs), [&](const char* a) { return id == a; }) ==
          std::end(kAttrs)) {
        name = id;
        break;
      }
      for (int depth = 0; q < s.size(); ++q) {  // skip the attribute's parentheses
        if (s[q] == '(') ++depth;
        if (s[q] == ')' && --depth == 0) {
          ++q;
          break;
        }
      }
    }
    if (name.empty()) continue;
    int depth = 0, commas = 0;
    bool any = false;
    std::string first;
    for (++q; q < s.size(); ++q) {
      const char c = s[q];
      if (c == '(' || c == '<' || c == '[' || c == '{') ++depth;
      else if ((c == ')' || c == '>' || c == ']' || c == '}') && depth > 0) --depth;
      else if (c == ')') break;
      else if (c == ',' && depth == 0) ++commas;
      if (!std::isspace(static_cast<unsigned char>(c))) {
        any = true;
        if (commas == 0) first += c;
      }
    }
    const int params = !any || first == "void" ? 0 : commas + 1;
    out.push_back({name, params});
    p = q;
  }
  return out;
}

std::string pointer_string(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%p", p);
  return buf;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "(none)" : s;
}

// Largest divisor of n that is <= limit (at least 1).
std::size_t largest_divisor(std::size_t n, std::size_t limit) {
  for (std::size_t b = std::min(n, limit); b > 1; --b)
    if (n % b == 0) return b;
  return 1;
}

}  // namespace

// ------------------------------------------------------------------ buffers / pinned

CudaBuffer::~CudaBuffer() {
  if (!owned_ || ptr_ == 0) return;
  const ContextScope scope(dev_->context(), std::nothrow);
  if (scope.ok()) release(api().cuMemFree, "cuMemFree_v2", ptr_);
}

CudaPinned::~CudaPinned() {
  if (!p_) return;
  const ContextScope scope(dev_->context(), std::nothrow);
  if (scope.ok()) release(api().cuMemFreeHost, "cuMemFreeHost", p_);
}

// ------------------------------------------------------------------ events

CudaEvent::~CudaEvent() {
  if (!ev_) return;
  const ContextScope scope(dev_->context(), std::nothrow);
  if (scope.ok()) release(api().cuEventDestroy, "cuEventDestroy_v2", ev_);
}

void CudaEvent::synchronize() {
  const ContextScope scope(dev_->context());
  check(api().cuEventSynchronize, "cuEventSynchronize", "", ev_);
}

bool CudaEvent::query() {
  const ContextScope scope(dev_->context());
  const CUresult r = api().cuEventQuery(ev_);
  if (r == CUDA_SUCCESS) return true;
  if (r == CUDA_ERROR_NOT_READY) return false;
  throw_error(r, "cuEventQuery", "");
}

float CudaEvent::elapsed_ms(EventImpl& start) {
  auto& s = as_cuda(start);
  const ContextScope scope(dev_->context());
  check(api().cuEventSynchronize, "cuEventSynchronize", "start event", s.ev_);
  check(api().cuEventSynchronize, "cuEventSynchronize", "end event", ev_);
  float ms = 0.f;
  check(api().cuEventElapsedTime, "cuEventElapsedTime", "", &ms, s.ev_, ev_);
  return ms;
}

// ------------------------------------------------------------------ programs / kernels

CudaKernel::CudaKernel(std::shared_ptr<CudaProgram> prog, CUfunction fn, std::string name)
    : prog_(std::move(prog)), fn_(fn), name_(std::move(name)) {
  const auto& d = api();
  if (d.cuFuncGetParamInfo) {
    for (std::size_t i = 0;; ++i) {
      std::size_t offset = 0, size = 0;
      const CUresult r = d.cuFuncGetParamInfo(fn_, i, &offset, &size);
      if (r == CUDA_ERROR_INVALID_VALUE) break;  // past the last parameter
      if (r != CUDA_SUCCESS) throw_error(r, "cuFuncGetParamInfo", "parameters of kernel '" + name_ + "'");
      param_sizes_.push_back(size);
    }
  } else {
    const int n = prog_->source_param_count(name_);
    if (n < 0)
      throw Unsupported("cannot count the parameters of kernel '" + name_ +
                            "': the driver has no cuFuncGetParamInfo (CUDA 12.4+) and the kernel was not found "
                            "in the source text; update the NVIDIA driver",
                        details("cuFuncGetParamInfo"));
    param_sizes_.assign(static_cast<std::size_t>(n), 0);
  }
  int v = 0;
  check(d.cuFuncGetAttribute, "cuFuncGetAttribute", "max threads of '" + name_ + "'", &v,
        CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, fn_);
  max_threads_ = static_cast<std::size_t>(v);
  check(d.cuFuncGetAttribute, "cuFuncGetAttribute", "shared size of '" + name_ + "'", &v,
        CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, fn_);
  static_shared_ = static_cast<std::size_t>(v);
}

const Device& CudaKernel::device() const { return prog_->device(); }
CudaDevice& CudaKernel::cuda_device() const { return prog_->cuda_device(); }

void CudaKernel::ensure_dynamic_shared(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes <= dyn_shared_limit_) return;
  check(api().cuFuncSetAttribute, "cuFuncSetAttribute",
        "raising the dynamic shared memory of '" + name_ + "' to " + std::to_string(bytes) + " bytes", fn_,
        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(bytes));
  dyn_shared_limit_ = bytes;
}

void fill_launch_config(CUlaunchConfig& cfg, CUlaunchAttribute& attr, const unsigned grid[3], const unsigned block[3],
                        const unsigned cluster[3], std::size_t shared, CUstream stream, bool set_cluster) {
  cfg = CUlaunchConfig{};
  cfg.gridDimX = grid[0];
  cfg.gridDimY = grid[1];
  cfg.gridDimZ = grid[2];
  cfg.blockDimX = block[0];
  cfg.blockDimY = block[1];
  cfg.blockDimZ = block[2];
  cfg.sharedMemBytes = static_cast<unsigned>(shared);
  cfg.hStream = stream;
  if (set_cluster) {
    attr = CUlaunchAttribute{};
    attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr.value.clusterDim.x = cluster[0];
    attr.value.clusterDim.y = cluster[1];
    attr.value.clusterDim.z = cluster[2];
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
  }
}

void CudaKernel::required_cluster(unsigned out[3]) {
  // Under mu_.
  if (!required_cluster_known_) {
    const CUfunction_attribute which[3] = {CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH,
                                           CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT,
                                           CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH};
    for (int d = 0; d < 3; ++d) {
      // A driver that cannot say has no compile-time cluster shapes to enforce.
      int v = 0;
      if (api().cuFuncGetAttribute(&v, which[d], fn_) != CUDA_SUCCESS) v = 0;
      required_cluster_[d] = static_cast<unsigned>(v > 0 ? v : 0);
    }
    required_cluster_known_ = true;
  }
  for (int d = 0; d < 3; ++d) out[d] = required_cluster_[d];
}

int CudaKernel::active_clusters(const unsigned block[3], const unsigned cluster[3], std::size_t shared,
                                bool set_dims) {
  const unsigned grid[3] = {cluster[0], cluster[1], cluster[2]};
  CUlaunchAttribute attr{};
  CUlaunchConfig cfg{};
  fill_launch_config(cfg, attr, grid, block, cluster, shared, nullptr, set_dims);
  int n = 0;
  const CUresult r = api().cuOccupancyMaxActiveClusters(&n, fn_, &cfg);
  if (r == CUDA_ERROR_INVALID_CLUSTER_SIZE) return 0;  // no cluster of this shape fits
  if (r != CUDA_SUCCESS) throw_error(r, "cuOccupancyMaxActiveClusters", "kernel '" + name_ + "'");
  return n;
}

int CudaKernel::max_active_clusters(const unsigned block[3], const unsigned cluster[3], std::size_t shared) {
  return active_clusters(block, cluster, shared, check_cluster(cluster));
}

bool CudaKernel::check_cluster(const unsigned cluster[3]) {
  const auto& d = api();
  auto shape = [&] {
    return std::to_string(cluster[0]) + "x" + std::to_string(cluster[1]) + "x" + std::to_string(cluster[2]);
  };
  auto who = [&] { return "launch of '" + name_ + "' in clusters of " + shape(); };
  const CudaDevice& dev = cuda_device();
  if (dev.cc_major() < 9)
    throw Unsupported(who() + ": thread-block clusters need compute capability 9.0 or newer; " +
                          dev.info().name + " is " + std::to_string(dev.cc_major()) + "." +
                          std::to_string(dev.cc_minor()),
                      details("cuLaunchKernelEx", CUDA_ERROR_NOT_SUPPORTED));
  if (!d.cuLaunchKernelEx || !d.cuOccupancyMaxActiveClusters)
    throw Unsupported(who() + ": the NVIDIA driver has no cuLaunchKernelEx / cuOccupancyMaxActiveClusters "
                              "(CUDA 12.0+); update the driver",
                      details("cuLaunchKernelEx"));
  const std::size_t total = std::size_t{cluster[0]} * cluster[1] * cluster[2];
  std::lock_guard<std::mutex> lock(mu_);
  unsigned req[3];
  required_cluster(req);
  const bool compiled_shape = req[0] || req[1] || req[2];
  if (compiled_shape) {
    for (int i = 0; i < 3; ++i)
      if (std::max(req[i], 1u) != cluster[i])
        throw InvalidArgument(who() + ": the kernel was compiled for clusters of " + std::to_string(req[0]) + "x" +
                                  std::to_string(std::max(req[1], 1u)) + "x" + std::to_string(std::max(req[2], 1u)) +
                                  " (__cluster_dims__) and takes no other shape",
                              details("cuLaunchKernelEx", CUDA_ERROR_INVALID_CLUSTER_SIZE));
  }
  if (total > 8 && !non_portable_cluster_) {
    const CUresult r = d.cuFuncSetAttribute(fn_, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1);
    if (r != CUDA_SUCCESS)
      throw Unsupported(who() + ": " + std::to_string(total) + " work-groups per cluster exceed the portable 8 and " +
                            dev.info().name + " does not allow more for this kernel (" + status_name(r) + ")",
                        details("cuFuncSetAttribute", r));
    non_portable_cluster_ = true;
  }
  return !compiled_shape;
}

bool CudaKernel::prepare_cluster(const unsigned block[3], const unsigned cluster[3], std::size_t shared) {
  const std::array<std::size_t, 7> key = {block[0], block[1], block[2], cluster[0], cluster[1], cluster[2], shared};
  {
    // A shape that passed before passed check_cluster too: one lock on the launch path.
    std::lock_guard<std::mutex> lock(mu_);
    if (std::find(cluster_ok_.begin(), cluster_ok_.end(), key) != cluster_ok_.end())
      return !(required_cluster_[0] || required_cluster_[1] || required_cluster_[2]);
  }
  const bool set_dims = check_cluster(cluster);
  if (active_clusters(block, cluster, shared, set_dims) < 1) {
    const std::size_t total = std::size_t{cluster[0]} * cluster[1] * cluster[2];
    const std::size_t threads = std::size_t{block[0]} * block[1] * block[2];
    throw InvalidArgument("launch of '" + name_ + "' in clusters of " + std::to_string(cluster[0]) + "x" +
                              std::to_string(cluster[1]) + "x" + std::to_string(cluster[2]) + ": no cluster of " +
                              std::to_string(total) + " work-groups of " + std::to_string(threads) + " threads with " +
                              std::to_string(shared + static_shared_) + " bytes of shared memory each fits on " +
                              cuda_device().info().name +
                              "; use fewer work-groups per cluster, fewer threads or less shared memory",
                          details("cuOccupancyMaxActiveClusters"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  cluster_ok_.push_back(key);
  return set_dims;
}

CudaProgram::CudaProgram(std::shared_ptr<CudaDevice> dev, CUmodule mod, std::vector<std::uint8_t> binary,
                         std::string source)
    : dev_(std::move(dev)), handle_(dev_), mod_(mod), binary_(std::move(binary)), source_(std::move(source)) {}

CudaProgram::~CudaProgram() {
  if (!mod_) return;
  const ContextScope scope(dev_->context(), std::nothrow);
  if (scope.ok()) release(api().cuModuleUnload, "cuModuleUnload", mod_);
}

std::vector<std::string> CudaProgram::kernel_names() const {
  const auto& d = api();
  std::vector<std::string> names;
  unsigned count = 0;
  const ContextScope scope(dev_->context(), std::nothrow);
  if (d.cuModuleGetFunctionCount && d.cuModuleEnumerateFunctions && d.cuFuncGetName && scope.ok() &&
      d.cuModuleGetFunctionCount(&count, mod_) == CUDA_SUCCESS) {
    std::vector<CUfunction> fns(count);
    if (count == 0 || d.cuModuleEnumerateFunctions(fns.data(), count, mod_) == CUDA_SUCCESS) {
      for (CUfunction f : fns) {
        const char* n = nullptr;
        if (d.cuFuncGetName(&n, f) == CUDA_SUCCESS && n) names.emplace_back(n);
      }
      std::sort(names.begin(), names.end());
      return names;
    }
  }
  for (const auto& k : parse_kernels(source_)) names.push_back(k.name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

int CudaProgram::source_param_count(const std::string& name) const {
  for (const auto& k : parse_kernels(source_))
    if (k.name == name) return k.params;
  return -1;
}

std::shared_ptr<KernelImpl> CudaProgram::kernel(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = kernels_.begin(); it != kernels_.end();) {
    if (auto k = it->second.lock()) {
      if (it->first == name) return k;
      ++it;
    } else {
      it = kernels_.erase(it);
    }
  }
  const ContextScope scope(dev_->context());
  CUfunction fn = nullptr;
  const CUresult r = api().cuModuleGetFunction(&fn, mod_, name.c_str());
  if (r == CUDA_ERROR_NOT_FOUND)
    throw KernelNotFound("kernel '" + name + "' is not in this program; it has: " + join(kernel_names()) +
                             " (CUDA kernels must be extern \"C\"; AXLE_KERNEL declares them so)",
                         details("cuModuleGetFunction", r));
  if (r != CUDA_SUCCESS) throw_error(r, "cuModuleGetFunction", "kernel '" + name + "'");
  auto k = std::make_shared<CudaKernel>(shared_from_this(), fn, name);
  kernels_.emplace_back(name, k);
  return k;
}

// ------------------------------------------------------------------ streams

CudaStream::~CudaStream() {
  if (!s_) return;
  const ContextScope scope(dev_->context(), std::nothrow);
  if (!scope.ok()) return;
  release(api().cuStreamSynchronize, "cuStreamSynchronize", s_);
  if (owned_) release(api().cuStreamDestroy, "cuStreamDestroy_v2", s_);
}

void CudaStream::copy_h2d(const void* host, BufferImpl& dst, std::size_t dst_offset, std::size_t bytes) {
  const ContextScope scope(dev_->context());
  check(api().cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", "", as_cuda(dst).ptr() + dst_offset, host, bytes, s_);
}

void CudaStream::copy_d2h(BufferImpl& src, std::size_t src_offset, void* host, std::size_t bytes) {
  const ContextScope scope(dev_->context());
  check(api().cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", "", host, as_cuda(src).ptr() + src_offset, bytes, s_);
}

void CudaStream::copy_d2d(BufferImpl& src, std::size_t src_offset, BufferImpl& dst, std::size_t dst_offset,
                          std::size_t bytes) {
  const ContextScope scope(dev_->context());
  check(api().cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2", "", as_cuda(dst).ptr() + dst_offset,
        as_cuda(src).ptr() + src_offset, bytes, s_);
}

void CudaStream::fill(BufferImpl& dst, std::size_t offset, std::size_t bytes, const void* pattern,
                      std::size_t pattern_size) {
  const auto& d = api();
  const ContextScope scope(dev_->context());
  const CUdeviceptr p = as_cuda(dst).ptr() + offset;
  if (pattern_size == 1) {
    unsigned char v;
    std::memcpy(&v, pattern, 1);
    return check(d.cuMemsetD8Async, "cuMemsetD8Async", "", p, v, bytes, s_);
  }
  if (pattern_size == 2) {
    unsigned short v;
    std::memcpy(&v, pattern, 2);
    return check(d.cuMemsetD16Async, "cuMemsetD16Async", "", p, v, bytes / 2, s_);
  }
  if (pattern_size % 4 != 0)
    throw Unsupported("fill: a " + std::to_string(pattern_size) + "-byte pattern is not supported on CUDA",
                      details("cuMemsetD32Async"));
  const std::size_t nwords = pattern_size / 4;
  std::vector<unsigned> w(nwords);
  std::memcpy(w.data(), pattern, pattern_size);
  std::size_t period = nwords;  // shortest repeating period of the words
  for (std::size_t cand = 1; cand < nwords; cand *= 2) {
    if (nwords % cand) continue;
    bool ok = true;
    for (std::size_t i = cand; i < nwords && ok; ++i) ok = w[i] == w[i % cand];
    if (ok) {
      period = cand;
      break;
    }
  }
  if (period == 1) return check(d.cuMemsetD32Async, "cuMemsetD32Async", "", p, w[0], bytes / 4, s_);
  if (period <= 4) {
    CUfunction fn = dev_->fill_function();
    unsigned long long count = bytes / 4;
    unsigned per = static_cast<unsigned>(period);
    unsigned w4[4] = {w[0], w[1], period > 2 ? w[2] : 0u, period > 2 ? w[3] : 0u};
    unsigned long long dst_ptr = p;
    void* params[] = {&dst_ptr, &count, &per, &w4[0], &w4[1], &w4[2], &w4[3]};
    const unsigned threads = 256;
    const unsigned long long max_blocks = std::max(1u, dev_->info().compute_units) * 32ull;
    const unsigned blocks = static_cast<unsigned>(std::min<unsigned long long>((count + threads - 1) / threads, max_blocks));
    return check(d.cuLaunchKernel, "cuLaunchKernel", "built-in fill kernel", fn, blocks, 1u, 1u, threads, 1u, 1u, 0u,
                 s_, params, nullptr);
  }
  // Longer patterns: one strided 2-D memset per 32-bit word of the pattern.
  const std::size_t rows = bytes / pattern_size;
  for (std::size_t i = 0; i < nwords; ++i)
    check(d.cuMemsetD2D32Async, "cuMemsetD2D32Async", "", p + 4 * i, pattern_size, w[i], std::size_t{1}, rows, s_);
}

void CudaStream::launch(KernelImpl& kernel, const Range& global, const Range& local,
                        const std::vector<KernelArg>& args) {
  launch_impl(static_cast<CudaKernel&>(kernel), global, local, nullptr, args);
}

void CudaStream::launch_cluster(KernelImpl& kernel, const Range& global, const Range& local, const Range& cluster,
                                const std::vector<KernelArg>& args) {
  launch_impl(static_cast<CudaKernel&>(kernel), global, local, &cluster, args);
}

void CudaStream::launch_impl(CudaKernel& k, const Range& global, const Range& local, const Range* cluster,
                             const std::vector<KernelArg>& args) {
  const auto& info = dev_->info();
  const unsigned dims = global.dims();

  // Block shape: as given, else the largest divisors of global (<= 256 threads in all).
  unsigned block[3] = {1, 1, 1}, grid[3] = {1, 1, 1};
  if (local.empty()) {
    std::size_t budget = std::min<std::size_t>(256, k.max_work_group_size() ? k.max_work_group_size() : 256);
    for (unsigned d = 0; d < dims; ++d) {
      const std::size_t b = largest_divisor(global[d], std::min<std::size_t>(budget, info.max_work_item_sizes[d]));
      block[d] = static_cast<unsigned>(b);
      budget /= b;
    }
  } else {
    for (unsigned d = 0; d < dims; ++d) block[d] = static_cast<unsigned>(local[d]);
  }
  const std::size_t threads = std::size_t{block[0]} * block[1] * block[2];
  if (threads > k.max_work_group_size())
    throw InvalidArgument("launch of '" + k.name() + "': a block of " + std::to_string(threads) +
                              " threads exceeds this kernel's limit of " + std::to_string(k.max_work_group_size()),
                          details("cuLaunchKernel", CUDA_ERROR_INVALID_VALUE));
  for (unsigned d = 0; d < 3; ++d) {
    const std::size_t g = global[d] / block[d];
    if (block[d] > info.max_work_item_sizes[d] || g > dev_->max_grid(d))
      throw InvalidArgument("launch of '" + k.name() + "': block " + std::to_string(block[d]) + " x grid " +
                                std::to_string(g) + " in dimension " + std::to_string(d) +
                                " exceeds the device limits (block " + std::to_string(info.max_work_item_sizes[d]) +
                                ", grid " + std::to_string(dev_->max_grid(d)) + ")" +
                                (local.empty() ? "; pass an explicit local range" : ""),
                            details("cuLaunchKernel", CUDA_ERROR_INVALID_VALUE));
    grid[d] = static_cast<unsigned>(g);
  }

  // Arguments: scalars by address; buffers as CUdeviceptr + offset; local memory as a
  // byte offset into the dynamic shared memory (axle_local_ptr in the prelude).
  const std::size_t n = args.size();
  std::vector<void*> params(n);
  std::vector<unsigned long long> slots(n);
  std::size_t shared = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& a = args[i];
    const std::size_t want = k.arg_size(static_cast<unsigned>(i));
    switch (a.kind) {
      case KernelArg::Kind::Scalar:
        if (want && want != a.size)
          throw InvalidArgument("launch of '" + k.name() + "': argument " + std::to_string(i) + " is a " +
                                    std::to_string(a.size) + "-byte scalar, the kernel expects " +
                                    std::to_string(want) + " bytes",
                                details("cuLaunchKernel", CUDA_ERROR_INVALID_VALUE));
        params[i] = const_cast<unsigned char*>(a.value);
        break;
      case KernelArg::Kind::Buffer:
        // An empty view is a null pointer, as on OpenCL.
        slots[i] = a.view_bytes == 0 ? 0 : as_cuda(a.buffer->impl()).ptr() + a.offset_bytes;
        params[i] = &slots[i];
        break;
      case KernelArg::Kind::Local:
        // The front end caps the total below 2^31 bytes, so neither this sum nor the
        // unsigned passed to cuLaunchKernel can wrap.
        shared = (shared + kLocalAlign - 1) / kLocalAlign * kLocalAlign;
        slots[i] = shared;
        shared += a.size;
        params[i] = &slots[i];
        break;
    }
    if (want && a.kind != KernelArg::Kind::Scalar && want != sizeof(unsigned long long))
      throw InvalidArgument("launch of '" + k.name() + "': argument " + std::to_string(i) +
                                " is a buffer/local-memory argument (8 bytes), the kernel parameter has " +
                                std::to_string(want) + " bytes",
                            details("cuLaunchKernel", CUDA_ERROR_INVALID_VALUE));
  }
  if (shared + k.static_shared() > dev_->max_shared_optin())
    throw InvalidArgument("launch of '" + k.name() + "': " + std::to_string(shared) + " bytes of local memory + " +
                              std::to_string(k.static_shared()) + " static exceed the device's " +
                              std::to_string(dev_->max_shared_optin()) + " bytes per block",
                          details("cuLaunchKernel", CUDA_ERROR_INVALID_VALUE));
  const ContextScope scope(dev_->context());
  if (shared > kDefaultDynamicShared) k.ensure_dynamic_shared(shared);
  if (!cluster) {
    check(api().cuLaunchKernel, "cuLaunchKernel", "kernel '" + k.name() + "'", k.function(), grid[0], grid[1],
          grid[2], block[0], block[1], block[2], static_cast<unsigned>(shared), s_, n ? params.data() : nullptr,
          nullptr);
    return;
  }
  const unsigned cdim[3] = {static_cast<unsigned>((*cluster)[0]), static_cast<unsigned>((*cluster)[1]),
                            static_cast<unsigned>((*cluster)[2])};
  CUlaunchAttribute attr{};
  CUlaunchConfig cfg{};
  const bool set_dims = k.prepare_cluster(block, cdim, shared);
  fill_launch_config(cfg, attr, grid, block, cdim, shared, s_, set_dims);
  check(api().cuLaunchKernelEx, "cuLaunchKernelEx",
        "kernel '" + k.name() + "' in clusters of " + cluster->str(), &cfg, k.function(),
        n ? params.data() : nullptr, nullptr);
}

void CudaStream::record(EventImpl& event) {
  auto& e = as_cuda(event);
  const ContextScope scope(dev_->context());
  check(api().cuEventRecord, "cuEventRecord", "", e.handle(), s_);
  e.mark_recorded();
}

void CudaStream::wait(EventImpl& event) {
  const ContextScope scope(dev_->context());
  check(api().cuStreamWaitEvent, "cuStreamWaitEvent", "", s_, as_cuda(event).handle(), 0u);
}

void CudaStream::synchronize() {
  const ContextScope scope(dev_->context());
  check(api().cuStreamSynchronize, "cuStreamSynchronize", "", s_);
}

// ------------------------------------------------------------------ device

CudaDevice::CudaDevice(int ordinal, const std::string& backend_name) {
  const auto& d = api();
  check(d.cuDeviceGet, "cuDeviceGet", "device " + std::to_string(ordinal), &dev_, ordinal);
  check(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", "device " + std::to_string(ordinal), &ctx_, dev_);
  try {
    char name[256] = {};
    check(d.cuDeviceGetName, "cuDeviceGetName", "", name, static_cast<int>(sizeof(name)), dev_);
    std::size_t total = 0;
    check(d.cuDeviceTotalMem, "cuDeviceTotalMem_v2", "", &total, dev_);
    cc_major_ = attr(dev_, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    cc_minor_ = attr(dev_, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    info_.backend = backend_name;
    info_.index = ordinal;
    info_.name = name;
    info_.vendor = "NVIDIA Corporation";
    info_.driver_version = version_string(d.driver_version);
    info_.version = "CUDA " + info_.driver_version;
    info_.architecture = "sm_" + std::to_string(cc_major_ * 10 + cc_minor_);
    info_.type = DeviceType::GPU;
    info_.compute_units = static_cast<unsigned>(attr(dev_, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT));
    info_.max_clock_mhz = static_cast<unsigned>(attr(dev_, CU_DEVICE_ATTRIBUTE_CLOCK_RATE) / 1000);
    info_.global_mem_bytes = total;
    info_.max_alloc_bytes = total;
    const int per_block = attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
    const int optin = attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    shared_optin_ = static_cast<std::size_t>(std::max(per_block, optin));
    info_.local_mem_bytes = shared_optin_;
    info_.cache_bytes = static_cast<std::uint64_t>(std::max(0, attr(dev_, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)));
    info_.max_work_group_size = static_cast<std::size_t>(attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK));
    info_.max_work_item_sizes[0] = static_cast<std::size_t>(attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X));
    info_.max_work_item_sizes[1] = static_cast<std::size_t>(attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y));
    info_.max_work_item_sizes[2] = static_cast<std::size_t>(attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z));
    max_grid_[0] = static_cast<unsigned>(attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X));
    max_grid_[1] = static_cast<unsigned>(attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y));
    max_grid_[2] = static_cast<unsigned>(attr(dev_, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z));
    info_.sub_group_size = static_cast<unsigned>(attr(dev_, CU_DEVICE_ATTRIBUTE_WARP_SIZE));
    info_.preferred_vector_width_float = 1;
    info_.fp16 = cc_major_ * 10 + cc_minor_ >= 53;
    info_.fp64 = true;
    info_.unified_memory = attr(dev_, CU_DEVICE_ATTRIBUTE_INTEGRATED) != 0;
  } catch (...) {
    release(d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", dev_);
    throw;
  }
}

CudaDevice::~CudaDevice() {
  if (!ctx_) return;
  if (fill_module_) {
    const ContextScope scope(ctx_, std::nothrow);
    if (scope.ok()) release(api().cuModuleUnload, "cuModuleUnload", fill_module_);
  }
  release(api().cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", dev_);
}

CUfunction CudaDevice::fill_function() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fill_fn_) return fill_fn_;
  const ContextScope scope(ctx_);
  check(api().cuModuleLoadData, "cuModuleLoadData", "built-in fill kernel (PTX)", &fill_module_,
        static_cast<const void*>(kFillPtx));
  check(api().cuModuleGetFunction, "cuModuleGetFunction", "built-in fill kernel", &fill_fn_, fill_module_,
        "axle_fill_words");
  return fill_fn_;
}

std::unique_ptr<BufferImpl> CudaDevice::alloc(std::size_t bytes) {
  const ContextScope scope(ctx_);
  CUdeviceptr p = 0;
  check(api().cuMemAlloc, "cuMemAlloc_v2", std::to_string(bytes) + " bytes on " + info_.name, &p, bytes);
  return std::make_unique<CudaBuffer>(self(), p, bytes, true);
}

std::unique_ptr<BufferImpl> CudaDevice::adopt_buffer(void* native, std::size_t bytes) {
  const auto& d = api();
  const ContextScope scope(ctx_);
  const CUdeviceptr p = reinterpret_cast<CUdeviceptr>(native);
  CUcontext owner = nullptr;
  CUresult r = d.cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_CONTEXT, p);
  if (r != CUDA_SUCCESS)
    throw InvalidArgument("adopt_buffer: " + std::to_string(p) + " is not CUDA device memory (" + status_name(r) + ")",
                          details("cuPointerGetAttribute", r));
  if (owner != ctx_) {
    int ord = -1;
    d.cuPointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p);
    throw InvalidArgument("adopt_buffer: the pointer belongs to " +
                              (ord == dev_ ? std::string("another context of this device")
                                           : "CUDA device " + std::to_string(ord)) +
                              ", not to the primary context of " + info_.name + " (cuda:" +
                              std::to_string(info_.index) + ")",
                          details("cuPointerGetAttribute"));
  }
  CUdeviceptr base = 0;
  std::size_t size = 0;
  r = d.cuMemGetAddressRange(&base, &size, p);
  if (r == CUDA_SUCCESS && p + bytes > base + size)
    throw OutOfRange("adopt_buffer: " + std::to_string(bytes) + " bytes from the pointer reach past its allocation (" +
                         std::to_string(base + size - p) + " bytes left)",
                     details("cuMemGetAddressRange_v2"));
  return std::make_unique<CudaBuffer>(self(), p, bytes, false);
}

std::unique_ptr<PinnedImpl> CudaDevice::alloc_pinned(std::size_t bytes) {
  const ContextScope scope(ctx_);
  void* p = nullptr;
  check(api().cuMemHostAlloc, "cuMemHostAlloc", std::to_string(bytes) + " bytes of pinned host memory", &p, bytes,
        static_cast<unsigned>(CU_MEMHOSTALLOC_PORTABLE));
  return std::make_unique<CudaPinned>(self(), p, bytes);
}

std::unique_ptr<StreamImpl> CudaDevice::create_stream() {
  const ContextScope scope(ctx_);
  CUstream s = nullptr;
  check(api().cuStreamCreate, "cuStreamCreate", "", &s, static_cast<unsigned>(CU_STREAM_NON_BLOCKING));
  return std::make_unique<CudaStream>(self(), s, true);
}

std::unique_ptr<StreamImpl> CudaDevice::adopt_stream(void* native) {
  const auto& d = api();
  const auto s = static_cast<CUstream>(native);
  const std::string self_name = "the primary context " + pointer_string(ctx_) + " of " + info_.name +
                                " (cuda:" + std::to_string(info_.index) + ")";
  const ContextScope scope(ctx_);
  CUcontext owner = nullptr;
  const CUresult r = d.cuStreamGetCtx(s, &owner);
  if (r != CUDA_SUCCESS)
    throw InvalidArgument("adopt_stream: " + pointer_string(s) + " is not a CUDA stream of a live context (" +
                              status_name(r) + "); expected a stream of " + self_name,
                          details("cuStreamGetCtx", r));
  if (owner != ctx_) {
    CUdevice owner_dev = -1;
    {
      const ContextScope other(owner, std::nothrow);
      if (!other.ok() || d.cuCtxGetDevice(&owner_dev) != CUDA_SUCCESS) owner_dev = -1;
    }
    const std::string where = owner_dev == dev_ ? "another context " + pointer_string(owner) + " of this device"
                              : owner_dev >= 0
                                  ? "context " + pointer_string(owner) + " of CUDA device " + std::to_string(owner_dev)
                                  : "context " + pointer_string(owner);
    throw InvalidArgument("adopt_stream: the stream belongs to " + where + ", not to " + self_name +
                              "; create it while axle::cuda::context(device) is current",
                          details("cuStreamGetCtx"));
  }
  return std::make_unique<CudaStream>(self(), s, false);
}

std::unique_ptr<EventImpl> CudaDevice::create_event() {
  const ContextScope scope(ctx_);
  CUevent e = nullptr;
  check(api().cuEventCreate, "cuEventCreate", "", &e, static_cast<unsigned>(CU_EVENT_DEFAULT));
  return std::make_unique<CudaEvent>(self(), e);
}

void CudaDevice::synchronize() {
  const ContextScope scope(ctx_);
  check(api().cuCtxSynchronize, "cuCtxSynchronize", "");
}

std::string CudaDevice::native_options(const BuildOptions& options) const { return cuda::native_options(options); }

std::string CudaDevice::compiler_id() const {
  const auto& n = nvrtc();
  return "nvrtc " + (n.loaded ? std::to_string(n.major) + "." + std::to_string(n.minor) : std::string("none")) +
         "; driver " + std::to_string(api().driver_version);
}

std::string CudaDevice::target_arch(const CompileRequest& req) const {
  return choose_arch(req.cuda_arch, cc_major_, cc_minor_);
}

std::shared_ptr<ProgramImpl> CudaDevice::compile(const CompileRequest& req) {
  if (req.kind == SourceKind::OpenCL)
    throw Unsupported("'" + req.name +
                          "' is native OpenCL C, which the CUDA backend cannot build: write it in the portable "
                          "dialect (Source::portable, AXLE_ macros) or run it on an OpenCL device "
                          "(AXLE_DEVICE=opencl:gpu)",
                      details("nvrtcCompileProgram"));
  const auto& n = nvrtc();
  if (!n.loaded)
    throw Unsupported("cannot compile '" + req.name + "' for " + info_.name + ": " + n.error +
                          "; install the CUDA toolkit's NVRTC or set CUDA_PATH",
                      details("dlopen(libnvrtc)"));
  const std::string arch = target_arch(req);
  const std::string file = req.name + (req.kind == SourceKind::CUDA ? ".cu" : ".cl");
  NvrtcResult res = cuda::compile(file, source_text(req.kind, req.defines, req.text), req.options, arch);
  if (!res.ok) {
    Error::Details det{"cuda", res.status, res.call.empty() ? "" : n.nvrtcGetErrorString(static_cast<nvrtcResult>(res.status)),
                       res.call.empty() ? "nvrtcCompileProgram" : res.call};
    if (res.log.empty() && res.call.empty()) throw Unsupported("cannot compile '" + req.name + "': " + res.error, det);
    std::string shown = res.log.size() > 4000 ? res.log.substr(0, 4000) + "\n[... log truncated; see log()]" : res.log;
    throw BuildError("NVRTC could not compile '" + req.name + "' for " + arch + " (" + res.error + "):\n" + shown,
                     det, res.log);
  }
  if (!res.log.empty()) logger("cuda")->debug("NVRTC log for '{}' ({}):\n{}", req.name, arch, res.log);
  return load_module(req, std::move(res.binary), true, arch);
}

std::shared_ptr<ProgramImpl> CudaDevice::load_binary(const CompileRequest& req,
                                                     const std::vector<std::uint8_t>& binary) {
  if (req.kind == SourceKind::OpenCL || binary.empty()) return nullptr;
  try {
    return load_module(req, binary, false, target_arch(req));
  } catch (const Error& e) {
    logger("cuda")->debug("cached binary for '{}' not loaded: {}", req.name, e.what());
    return nullptr;
  }
}

std::shared_ptr<ProgramImpl> CudaDevice::load_module(const CompileRequest& req, std::vector<std::uint8_t> binary,
                                                     bool throw_on_reject, const std::string& arch) {
  const ContextScope scope(ctx_);
  CUmodule mod = nullptr;
  const CUresult r = api().cuModuleLoadData(&mod, binary.data());
  if (r != CUDA_SUCCESS) {
    if (!throw_on_reject) return nullptr;
    std::string why = "loading '" + req.name + "' (built for " + arch + ") on " + info_.name + " (" +
                      info_.architecture + ")";
    if (r == CUDA_ERROR_NO_BINARY_FOR_GPU || r == CUDA_ERROR_INVALID_IMAGE)
      why += ": the code was built for another architecture; leave BuildOptions::cuda_arch empty or set it to " +
             info_.architecture;
    else if (r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
      why += ": the driver is older than NVRTC; update the NVIDIA driver";
    throw_error(r, "cuModuleLoadData", why);
  }
  return std::make_shared<CudaProgram>(self(), mod, std::move(binary), req.text);
}

// ------------------------------------------------------------------ backend

namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    const auto& d = driver();
    if (!d.loaded) {
      reason_ = d.error;
      return;
    }
    int n = 0;
    const CUresult r = d.cuDeviceGetCount(&n);
    if (r != CUDA_SUCCESS) {
      reason_ = "cuDeviceGetCount failed: " + status_name(r);
      return;
    }
    if (n == 0) {
      reason_ = "no CUDA device";
      return;
    }
    count_ = n;
    devices_.resize(static_cast<std::size_t>(n));
    // NVRTC's version is part of every kernel-cache key, so the first build needs the
    // library loaded even when the binary comes from the disk cache. Load it in the
    // background while the caller creates contexts (the call_once inside nvrtc()
    // makes a concurrent first use wait for it).
    std::thread([] { nvrtc(); }).detach();
  }
  const std::string& name() const override { return name_; }
  bool available() const override { return count_ > 0; }
  const std::string& reason() const override { return reason_; }
  int device_count() const override { return count_; }
  std::shared_ptr<DeviceImpl> device(int index) override {
    if (index < 0 || index >= count_)
      throw DeviceUnavailable("cuda:" + std::to_string(index) + " does not exist (" + std::to_string(count_) +
                              " CUDA device(s))");
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = devices_[static_cast<std::size_t>(index)];
    if (!slot) slot = std::make_shared<CudaDevice>(index, name_);
    return slot;
  }

 private:
  std::string name_ = "cuda";
  std::string reason_;
  int count_ = 0;
  std::mutex mu_;
  std::vector<std::shared_ptr<CudaDevice>> devices_;
};

}  // namespace
}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<cuda::CudaBackend>(); }

}  // namespace axle::detail
