// Program building: include expansion, cache keys, in-memory and disk caches.
#include "axle/program.hpp"

#include <chrono>
#include <fstream>
#include <sstream>

#include "axle/config.hpp"
#include "axle/version.hpp"
#include "backend/backend.hpp"
#include "disk_cache.hpp"
#include "log.hpp"
#include "sha256.hpp"

namespace axle {

namespace embedded {
std::string_view runtime_resource(std::string_view name);
}

const char* to_string(SourceKind k) noexcept {
  switch (k) {
    case SourceKind::Portable: return "portable";
    case SourceKind::OpenCL: return "opencl";
    case SourceKind::CUDA: return "cuda";
  }
  return "?";
}

Source Source::portable(std::string text, std::string name) { return Source{SourceKind::Portable, std::move(text), std::move(name)}; }
Source Source::opencl(std::string text, std::string name) { return Source{SourceKind::OpenCL, std::move(text), std::move(name)}; }
Source Source::cuda(std::string text, std::string name) { return Source{SourceKind::CUDA, std::move(text), std::move(name)}; }

Source Source::from_file(const std::string& path, SourceKind kind) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InvalidArgument("Source::from_file: cannot read '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  auto slash = path.find_last_of('/');
  return Source{kind, ss.str(), slash == std::string::npos ? path : path.substr(slash + 1)};
}
Source Source::from_file(const std::string& path) {
  const bool cu = path.size() > 3 && path.compare(path.size() - 3, 3, ".cu") == 0;
  return from_file(path, cu ? SourceKind::CUDA : SourceKind::Portable);
}

const std::string& portable_prelude(const std::string& backend) {
  static const std::string kCl(embedded::runtime_resource("axle_opencl.h"));
  static const std::string kCuda(embedded::runtime_resource("axle_cuda.h"));
  if (backend == "opencl") return kCl;
  if (backend == "cuda") return kCuda;
  throw InvalidArgument("portable_prelude: unknown backend '" + backend + "'");
}

namespace {

// Replace `#include "name"` lines whose name is one of the given headers.
std::string expand_includes(const std::string& text, const BuildOptions& opts, int depth, const std::string& where) {
  if (opts.headers.empty()) return text;
  if (depth > 16) throw InvalidArgument("build: #include nesting deeper than 16 in '" + where + "'");
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::size_t p = line.find_first_not_of(" \t");
    bool replaced = false;
    if (p != std::string::npos && line.compare(p, 1, "#") == 0) {
      std::size_t q = line.find_first_not_of(" \t", p + 1);
      if (q != std::string::npos && line.compare(q, 7, "include") == 0) {
        std::size_t a = line.find('"', q + 7);
        std::size_t b = a == std::string::npos ? a : line.find('"', a + 1);
        if (b != std::string::npos) {
          const std::string name = line.substr(a + 1, b - a - 1);
          for (auto& [hname, htext] : opts.headers) {
            if (hname == name) {
              out += expand_includes(htext, opts, depth + 1, name);
              out += "\n";
              replaced = true;
              break;
            }
          }
        }
      }
    }
    if (!replaced) {
      out += line;
      out += "\n";
    }
  }
  return out;
}

}  // namespace

Program Device::build(const Source& source) const { return build(source, BuildOptions{}); }

Program Device::build(const Source& source, const BuildOptions& options) const {
  auto& dev = impl();
  auto lg = detail::logger("jit");
  if (source.text.empty()) throw InvalidArgument("build: source '" + source.name + "' is empty");

  detail::CompileRequest req;
  req.kind = source.kind;
  req.name = source.name;
  req.text = expand_includes(source.text, options, 0, source.name);
  req.options = dev.native_options(options);
  req.cuda_arch = options.cuda_arch;

  detail::Sha256 h;
  h.field("axle-program-v1");
  h.field(AXLE_VERSION_STRING);
  h.field(info().backend);
  h.field(info().name);
  h.field(info().driver_version);
  h.field(dev.target_arch(req));
  h.field(dev.compiler_id());
  h.field(to_string(req.kind));
  if (req.kind == SourceKind::Portable) h.field(portable_prelude(info().backend));
  h.field(req.options);
  h.field(req.text);
  const std::string key = h.hex_digest();

  {
    std::lock_guard<std::mutex> lock(dev.program_cache_mutex);
    auto it = dev.program_cache.find(key);
    if (it != dev.program_cache.end()) return Program(it->second);
  }

  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<detail::ProgramImpl> prog;
  std::string dir;
  if (options.disk_cache) {
    dir = cache_dir();
    if (auto hit = detail::disk_cache_load(dir, key)) {
      prog = dev.load_binary(req, hit->payload);
      if (prog) {
        prog->from_disk_cache = true;
      } else {
        lg->warn("cache entry {} was rejected by the {} driver; rebuilding", key, info().backend);
        detail::disk_cache_discard(dir, key, *hit, "rejected by the " + info().backend + " driver");
      }
    }
  }
  if (!prog) {
    prog = dev.compile(req);
    if (options.disk_cache) {
      auto bin = prog->binary();
      if (!bin.empty()) detail::disk_cache_store(dir, detail::CacheMeta{key, info().backend, info().name, source.name}, bin);
    }
  }
  prog->cache_key = key;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  lg->debug("{} '{}' on {} in {:.2f} ms (key {})", prog->from_disk_cache ? "loaded" : "compiled", source.name, id(),
            ms, key.substr(0, 16));

  std::lock_guard<std::mutex> lock(dev.program_cache_mutex);
  auto [it, inserted] = dev.program_cache.emplace(key, prog);
  return Program(it->second);
}

// ---------------------------------------------------------------- Program / Kernel

detail::ProgramImpl& Program::impl() const {
  if (!impl_) throw InvalidArgument("use of an empty Program handle");
  return *impl_;
}
Kernel Program::kernel(const std::string& name) const { return Kernel(impl().kernel(name)); }
std::vector<std::string> Program::kernel_names() const { return impl().kernel_names(); }
const Device& Program::device() const { return impl().device(); }
bool Program::from_disk_cache() const { return impl().from_disk_cache; }
const std::string& Program::cache_key() const { return impl().cache_key; }
void* Program::native_handle() const { return impl().native(); }

detail::KernelImpl& Kernel::impl() const {
  if (!impl_) throw InvalidArgument("use of an empty Kernel handle");
  return *impl_;
}
const std::string& Kernel::name() const { return impl().name(); }
unsigned Kernel::num_args() const { return impl().num_args(); }
std::size_t Kernel::max_work_group_size() const { return impl().max_work_group_size(); }
const Device& Kernel::device() const { return impl().device(); }
void* Kernel::native_handle() const { return impl().native(); }

}  // namespace axle
