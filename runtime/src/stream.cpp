// Stream front end: every argument is validated here before the backend sees it.
#include "axle/stream.hpp"

#include "backend/backend.hpp"
#include "log.hpp"

namespace axle {

void detail::StreamImpl::launch_cluster(KernelImpl& kernel, const Range&, const Range&, const Range& cluster,
                                        const std::vector<KernelArg>&) {
  throw Unsupported("launch of '" + kernel.name() + "' in clusters of " + cluster.str() +
                    ": this backend has no thread-block clusters");
}

namespace {

void check_same_device(const Device& stream_dev, const Buffer& b, const char* what) {
  if (!b.valid()) throw InvalidArgument(std::string(what) + ": empty (moved-from or reset) Buffer");
  if (b.device() != stream_dev)
    throw InvalidArgument(std::string(what) + ": the buffer belongs to " + b.device().id() + " but the stream to " +
                          stream_dev.id());
}

void check_range(const Buffer& b, std::size_t offset, std::size_t bytes, const char* what, const char* side) {
  const std::size_t size = b.size_bytes();
  if (offset > size || bytes > size - offset)
    throw OutOfRange(std::string(what) + ": " + side + " range [" + std::to_string(offset) + ", " +
                     std::to_string(offset) + " + " + std::to_string(bytes) + ") is outside the buffer of " +
                     std::to_string(size) + " bytes");
}

// No device has 2^31 bytes of local memory; a larger total is a size error (and
// could otherwise wrap the sum or a backend's 32-bit shared-memory size).
constexpr std::size_t kMaxLocalBytes = std::size_t{1} << 31;
// Hardware limit of a thread-block cluster (Hopper: 8 portable, 16 non-portable).
constexpr std::size_t kMaxClusterGroups = 16;

}  // namespace

Stream::Stream() noexcept = default;
Stream::Stream(Device device, std::unique_ptr<detail::StreamImpl> impl) noexcept
    : device_(std::move(device)), impl_(std::move(impl)) {}
Stream::Stream(Stream&& o) noexcept : device_(std::move(o.device_)), impl_(std::move(o.impl_)) {}
Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    impl_ = std::move(o.impl_);  // the old queue's destructor waits for its work
    device_ = std::move(o.device_);
  }
  return *this;
}
Stream::~Stream() = default;

detail::StreamImpl& Stream::impl() const {
  if (!impl_) throw InvalidArgument("use of an empty (moved-from) Stream");
  return *impl_;
}

void Stream::check_host_count(std::size_t a, std::size_t b, const char* what) {
  if (a != b)
    throw OutOfRange(std::string("Stream::copy (") + what + "): source has " + std::to_string(a) +
                     " element(s) but destination has " + std::to_string(b));
}

void Stream::copy_h2d_bytes(const void* host, const Buffer& dst, std::size_t off, std::size_t bytes) {
  auto& s = impl();
  check_same_device(device_, dst, "Stream::copy (host -> device)");
  check_range(dst, off, bytes, "Stream::copy (host -> device)", "destination");
  if (bytes == 0) return;
  if (!host) throw InvalidArgument("Stream::copy (host -> device): null host pointer");
  s.copy_h2d(host, dst.impl(), off, bytes);
}

void Stream::copy_d2h_bytes(const Buffer& src, std::size_t off, void* host, std::size_t bytes) {
  auto& s = impl();
  check_same_device(device_, src, "Stream::copy (device -> host)");
  check_range(src, off, bytes, "Stream::copy (device -> host)", "source");
  if (bytes == 0) return;
  if (!host) throw InvalidArgument("Stream::copy (device -> host): null host pointer");
  s.copy_d2h(src.impl(), off, host, bytes);
}

void Stream::copy_d2d_bytes(const Buffer& src, std::size_t src_off, const Buffer& dst, std::size_t dst_off,
                            std::size_t bytes) {
  auto& s = impl();
  check_same_device(device_, src, "Stream::copy (device -> device) source");
  check_same_device(device_, dst, "Stream::copy (device -> device) destination");
  check_range(src, src_off, bytes, "Stream::copy (device -> device)", "source");
  check_range(dst, dst_off, bytes, "Stream::copy (device -> device)", "destination");
  if (bytes == 0) return;
  // Two Buffer objects may wrap the same memory (adopted native handles).
  const bool same_memory = &src == &dst || src.impl().native() == dst.impl().native();
  if (same_memory && src_off < dst_off + bytes && dst_off < src_off + bytes)
    throw InvalidArgument("Stream::copy (device -> device): source and destination ranges overlap");
  s.copy_d2d(src.impl(), src_off, dst.impl(), dst_off, bytes);
}

void Stream::fill_bytes(const Buffer& dst, std::size_t off, std::size_t bytes, const void* pattern,
                        std::size_t pattern_size) {
  auto& s = impl();
  check_same_device(device_, dst, "Stream::fill");
  check_range(dst, off, bytes, "Stream::fill", "destination");
  if (pattern_size == 0 || pattern_size > 128 || (pattern_size & (pattern_size - 1)) != 0)
    throw InvalidArgument("Stream::fill: pattern size " + std::to_string(pattern_size) +
                          " is not a power of two up to 128");
  if (off % pattern_size != 0 || bytes % pattern_size != 0)
    throw InvalidArgument("Stream::fill: offset " + std::to_string(off) + " and size " + std::to_string(bytes) +
                          " must be multiples of the pattern size " + std::to_string(pattern_size));
  if (bytes == 0) return;
  s.fill(dst.impl(), off, bytes, pattern, pattern_size);
}

void Stream::launch_args(const Kernel& kernel, const Range& global, const Range& local,
                         const std::vector<KernelArg>& args) {
  launch_args(kernel, LaunchShape{global, local, Range{}}, args);
}

void Stream::launch_args(const Kernel& kernel, const LaunchShape& shape, const std::vector<KernelArg>& args) {
  auto& s = impl();
  const Range& global = shape.global;
  const Range& local = shape.local;
  const Range& cluster = shape.cluster;
  if (!kernel.valid()) throw InvalidArgument("Stream::launch: empty Kernel handle");
  auto& k = kernel.impl();
  // Messages are built only on failure: this is the per-launch hot path.
  auto who = [&k] { return "Stream::launch('" + k.name() + "')"; };
  if (k.device() != device_)
    throw InvalidArgument(who() + ": the kernel was built for " + k.device().id() + " but the stream is on " +
                          device_.id());
  if (global.dims() == 0) throw InvalidArgument(who() + ": empty global range");
  for (unsigned d = 0; d < global.dims(); ++d)
    if (global[d] == 0) throw InvalidArgument(who() + ": global range " + global.str() + " has a zero dimension");
  if (!local.empty()) {
    if (local.dims() != global.dims())
      throw InvalidArgument(who() + ": local range " + local.str() + " and global range " + global.str() +
                            " have different dimensions");
    const auto& inf = device_.info();
    for (unsigned d = 0; d < local.dims(); ++d) {
      if (local[d] == 0) throw InvalidArgument(who() + ": local range " + local.str() + " has a zero dimension");
      if (global[d] % local[d] != 0)
        throw InvalidArgument(who() + ": global range " + global.str() + " is not a multiple of local range " +
                              local.str() + " (use axle::round_up)");
      if (inf.max_work_item_sizes[d] && local[d] > inf.max_work_item_sizes[d])
        throw InvalidArgument(who() + ": local size " + std::to_string(local[d]) + " in dimension " +
                              std::to_string(d) + " exceeds the device limit " +
                              std::to_string(inf.max_work_item_sizes[d]));
    }
    const std::size_t max_wg = k.max_work_group_size();
    if (max_wg && local.total() > max_wg)
      throw InvalidArgument(who() + ": work-group of " + std::to_string(local.total()) +
                            " items exceeds this kernel's limit of " + std::to_string(max_wg) + " on " +
                            device_.id());
  }
  if (args.size() != k.num_args())
    throw InvalidArgument(who() + ": " + std::to_string(args.size()) + " argument(s) given, the kernel takes " +
                          std::to_string(k.num_args()));
  std::size_t local_total = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto arg = [&who, i] { return who() + " argument " + std::to_string(i); };
    switch (a.kind) {
      case KernelArg::Kind::Buffer:
        if (!a.buffer || !a.buffer->valid()) throw InvalidArgument(arg() + ": empty Buffer");
        if (a.buffer->device() != device_)
          throw InvalidArgument(arg() + ": the buffer belongs to " + a.buffer->device().id() + " but the stream to " +
                                device_.id());
        if (a.offset_bytes > a.buffer->size_bytes() ||
            (a.view_bytes != KernelArg::kWhole && a.view_bytes > a.buffer->size_bytes() - a.offset_bytes))
          throw OutOfRange(arg() + ": view [" + std::to_string(a.offset_bytes) + ", +" +
                           (a.view_bytes == KernelArg::kWhole ? std::string("rest") : std::to_string(a.view_bytes)) +
                           ") reaches beyond the buffer of " + std::to_string(a.buffer->size_bytes()) + " bytes");
        break;
      case KernelArg::Kind::Scalar: {
        const std::size_t want = k.arg_size(static_cast<unsigned>(i));
        if (want && want != a.size)
          throw InvalidArgument(arg() + ": a scalar of " + std::to_string(a.size) + " bytes, the kernel expects " +
                                std::to_string(want) + " bytes");
        break;
      }
      case KernelArg::Kind::Local:
        if (a.size == 0) throw InvalidArgument(arg() + ": zero-byte local memory");
        if (a.size > kMaxLocalBytes || local_total + a.size > kMaxLocalBytes)
          throw InvalidArgument(who() + ": local memory arguments total more than " +
                                std::to_string(kMaxLocalBytes) + " bytes (argument " + std::to_string(i) + " asks " +
                                std::to_string(a.size) + ")");
        local_total += a.size;
        break;
    }
  }
  const auto local_mem = device_.info().local_mem_bytes;
  if (local_mem && local_total > local_mem)
    throw InvalidArgument(who() + ": " + std::to_string(local_total) + " bytes of local memory requested, " +
                          device_.id() + " has " + std::to_string(local_mem));
  if (cluster.empty()) {
    s.launch(k, global, local, args);
    return;
  }
  if (local.empty())
    throw InvalidArgument(who() + ": a cluster launch needs an explicit local range (the cluster " + cluster.str() +
                          " counts work-groups)");
  if (cluster.dims() > global.dims())
    throw InvalidArgument(who() + ": cluster " + cluster.str() + " has more dimensions than the global range " +
                          global.str());
  for (unsigned d = 0; d < cluster.dims(); ++d) {
    if (cluster[d] == 0) throw InvalidArgument(who() + ": cluster " + cluster.str() + " has a zero dimension");
    const std::size_t groups = global[d] / local[d];
    if (groups % cluster[d] != 0)
      throw InvalidArgument(who() + ": the grid of " + std::to_string(groups) + " work-groups in dimension " +
                            std::to_string(d) + " is not a multiple of the cluster's " + std::to_string(cluster[d]) +
                            " (global " + global.str() + ", local " + local.str() + ", cluster " + cluster.str() + ")");
  }
  if (cluster.total() > kMaxClusterGroups)
    throw InvalidArgument(who() + ": a cluster of " + std::to_string(cluster.total()) + " work-groups (" +
                          cluster.str() + "); at most " + std::to_string(kMaxClusterGroups) +
                          " are possible, 8 portably");
  if (device_.backend() != "cuda")
    throw Unsupported(who() + ": thread-block clusters are a CUDA feature (compute capability 9.0 and newer); " +
                      device_.id() + " is an " + device_.backend() + " device");
  s.launch_cluster(k, global, local, cluster, args);
}

Event Stream::record() {
  impl();  // a moved-from stream says so, rather than blaming its empty device
  Event e = device_.create_event();
  record(e);
  return e;
}

void Stream::record(Event& event) {
  auto& s = impl();
  if (!event.valid()) throw InvalidArgument("Stream::record: empty Event");
  if (event.device() != device_)
    throw InvalidArgument("Stream::record: the event belongs to " + event.device().id() + " but the stream to " +
                          device_.id());
  s.record(event.impl());
}

void Stream::wait(const Event& event) {
  auto& s = impl();
  if (!event.valid()) throw InvalidArgument("Stream::wait: empty Event");
  if (!event.recorded()) throw InvalidArgument("Stream::wait: the event was never recorded");
  if (event.device() != device_)
    throw InvalidArgument("Stream::wait: the event belongs to " + event.device().id() + " but the stream to " +
                          device_.id());
  s.wait(event.impl());
}

void Stream::synchronize() {
  auto& s = impl();
  s.synchronize();
  s.workspace.retired.clear();  // the work that could still use them has finished
}

const Buffer& Stream::workspace(std::string_view slot, std::size_t bytes) {
  auto& s = impl();
  if (bytes == 0)
    throw InvalidArgument("Stream::workspace('" + std::string(slot) + "'): zero-byte workspace on " + device_.id());
  const std::size_t cap = device_.info().max_alloc_bytes;
  if (cap && bytes > cap)
    throw InvalidArgument("Stream::workspace('" + std::string(slot) + "'): " + std::to_string(bytes) +
                          " bytes exceeds the largest allocation of " + device_.id() + ": " + std::to_string(cap) +
                          " bytes");
  auto& ws = s.workspace;
  auto it = ws.slots.find(std::string(slot));
  if (it != ws.slots.end() && it->second.size_bytes() >= bytes) return it->second;
  // Grow geometrically so that a sequence of growing calls does not reallocate each time.
  std::size_t want = bytes + bytes / 4;
  if (want < bytes || (cap && want > cap)) want = bytes;
  Buffer fresh = device_.alloc_bytes(want);
  if (it == ws.slots.end()) return ws.slots.emplace(std::string(slot), std::move(fresh)).first->second;
  ws.retired.push_back(std::move(it->second));
  it->second = std::move(fresh);
  return it->second;
}

std::size_t Stream::workspace_bytes() const noexcept {
  if (!impl_) return 0;
  std::size_t n = 0;
  for (auto& [name, b] : impl_->workspace.slots) n += b.size_bytes();
  for (auto& b : impl_->workspace.retired) n += b.size_bytes();
  return n;
}

void Stream::release_workspace() {
  auto& s = impl();
  s.synchronize();
  s.workspace.retired.clear();
  s.workspace.slots.clear();
}
void* Stream::native_handle() const { return impl().native(); }

Stream Stream::adopt(const Device& device, void* native_queue) {
  if (!native_queue) throw InvalidArgument("Stream::adopt: null native queue");
  return Stream(device, device.impl().adopt_stream(native_queue));
}

}  // namespace axle
