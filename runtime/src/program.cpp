// Program building: include expansion, cache keys, in-memory and disk caches.
#include "axle/program.hpp"

#include <cctype>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
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

namespace detail {

std::string line_directive(std::size_t line, const std::string& name) {
  std::string out = "#line " + std::to_string(line) + " \"";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    out += (c == '"' || c == '\\' || u < 0x20 || u == 0x7f) ? '_' : c;
  }
  out += "\"\n";
  return out;
}

namespace {

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

// Append `text` with `#include "name"` lines of BuildOptions::headers replaced by the
// header's text between #line directives, so every line keeps its file and number.
void expand_includes(std::string& out, const std::string& text, const std::string& where, const BuildOptions& opts,
                     int depth) {
  if (depth > 16) throw InvalidArgument("build: #include nesting deeper than 16 in '" + where + "'");
  std::istringstream in(text);
  std::size_t lineno = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    const std::string* header = nullptr;
    std::string name;
    std::size_t p = line.find_first_not_of(" \t");
    if (p != std::string::npos && line.compare(p, 1, "#") == 0) {
      std::size_t q = line.find_first_not_of(" \t", p + 1);
      if (q != std::string::npos && line.compare(q, 7, "include") == 0) {
        std::size_t a = line.find('"', q + 7);
        std::size_t b = a == std::string::npos ? a : line.find('"', a + 1);
        if (b != std::string::npos) {
          name = line.substr(a + 1, b - a - 1);
          for (auto& [hname, htext] : opts.headers)
            if (hname == name) {
              header = &htext;
              break;
            }
        }
      }
    }
    if (!header) {
      out += line;
      out += "\n";
      continue;
    }
    out += line_directive(1, name);
    expand_includes(out, *header, name, opts, depth + 1);
    out += line_directive(lineno + 1, where);
  }
}

}  // namespace

std::string define_lines(const BuildOptions& options) {
  std::string out;
  for (const auto& [name, value] : options.defines) {
    if (!is_identifier(name))
      throw InvalidArgument("BuildOptions::define: '" + name +
                            "' is not a valid macro name (letters, digits and '_', not starting with a digit)");
    if (value.find_first_of("\r\n") != std::string::npos)
      throw InvalidArgument("BuildOptions::define: the value of '" + name +
                            "' holds a line break; a macro value must be one line");
    if (!value.empty() && value.back() == '\\')
      throw InvalidArgument("BuildOptions::define: the value of '" + name +
                            "' ends in a backslash, which would continue the #define onto the next line");
    out += "#define " + name + (value.empty() ? "" : " " + value) + "\n";
  }
  return out;
}

std::string expand_source(const std::string& text, const std::string& name, const BuildOptions& options) {
  std::string out = line_directive(1, name);
  out.reserve(text.size() + 64);
  expand_includes(out, text, name, options, 0);
  return out;
}

}  // namespace detail

Program Device::build(const Source& source) const { return build(source, BuildOptions{}); }

Program Device::build(const Source& source, const BuildOptions& options) const {
  auto& dev = impl();
  auto lg = detail::logger("jit");
  if (source.text.empty()) throw InvalidArgument("build: source '" + source.name + "' is empty");

  detail::CompileRequest req;
  req.kind = source.kind;
  req.name = source.name;
  req.defines = detail::define_lines(options);
  req.text = detail::expand_source(source.text, source.name, options);
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
  h.field(req.defines);
  h.field(req.options);
  // The source's name only labels compiler messages: the key leaves it out, so a
  // renamed source reuses its compiled program.
  h.field(detail::expand_source(source.text, std::string(), options));
  const std::string key = h.hex_digest();

  // One build per key at a time: the first thread to miss the cache builds; threads that
  // ask for the same key meanwhile wait for its program. A build that fails is not
  // shared: each waiter then tries again itself and throws its own error (an exception
  // object is never handed to several threads).
  std::promise<std::shared_ptr<detail::ProgramImpl>> promise;
  for (;;) {
    std::unique_lock<std::mutex> lock(dev.program_cache_mutex);
    auto it = dev.program_cache.find(key);
    if (it != dev.program_cache.end()) return Program(it->second);
    auto pending = dev.program_builds.find(key);
    if (pending == dev.program_builds.end()) {
      dev.program_builds.emplace(key, promise.get_future().share());
      break;
    }
    auto result = pending->second;
    lock.unlock();
    lg->debug("'{}' on {}: waiting for the same build in another thread", source.name, id());
    if (auto built = result.get()) return Program(built);
  }
  // Publishes the outcome: the program (cached), or nullptr after a failure.
  auto finish = [&](const std::shared_ptr<detail::ProgramImpl>& done) {
    {
      std::lock_guard<std::mutex> lock(dev.program_cache_mutex);
      if (done) dev.program_cache.emplace(key, done);
      dev.program_builds.erase(key);
    }
    promise.set_value(done);
  };

  std::shared_ptr<detail::ProgramImpl> prog;
  try {
    const auto t0 = std::chrono::steady_clock::now();
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
        if (!bin.empty())
          detail::disk_cache_store(dir, detail::CacheMeta{key, info().backend, info().name, source.name}, bin);
      }
    }
    prog->cache_key = key;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    lg->debug("{} '{}' on {} in {:.2f} ms (key {})", prog->from_disk_cache ? "loaded" : "compiled", source.name, id(),
              ms, key.substr(0, 16));
  } catch (...) {
    finish(nullptr);
    throw;
  }
  finish(prog);
  return Program(std::move(prog));
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
