// NVRTC compilation (see nvrtc_compile.hpp).
#include "nvrtc_compile.hpp"

#include <cstring>
#include <sstream>
#include <string_view>

#include "backend/backend.hpp"
#include "cuda_api.hpp"

namespace axle {
namespace embedded {
std::string_view runtime_resource(std::string_view name);
}

namespace detail {
namespace {

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// "sm_90a" -> 90, "compute_120" -> 120; -1 when not of that form.
int arch_number(const std::string& arch) {
  const auto us = arch.find('_');
  if (us == std::string::npos) return -1;
  int v = 0;
  std::size_t i = us + 1;
  if (i >= arch.size() || arch[i] < '0' || arch[i] > '9') return -1;
  for (; i < arch.size() && arch[i] >= '0' && arch[i] <= '9'; ++i) v = v * 10 + (arch[i] - '0');
  return v;
}

std::string arch_range(const std::vector<int>& archs) {
  if (archs.empty()) return "unknown targets";
  return "sm_" + std::to_string(archs.front()) + "..sm_" + std::to_string(archs.back());
}

NvrtcResult failed(std::string error) {
  NvrtcResult r;
  r.error = std::move(error);
  return r;
}

}  // namespace

namespace cuda {

std::string native_options(const BuildOptions& options) {
  std::string out = "-default-device\n-std=c++17\n";  // defines travel in the source (source_text)
  std::istringstream in(options.flags);
  for (std::string tok; in >> tok;) {
    if (tok == "-cl-fast-relaxed-math") tok = "--use_fast_math";
    else if (tok == "-cl-mad-enable") tok = "--fmad=true";
    else if (tok.rfind("-cl-", 0) == 0) continue;
    out += tok + "\n";
  }
  return out;
}

std::string source_text(SourceKind kind, const std::string& defines, const std::string& text) {
  std::string out = defines;
  if (kind == SourceKind::Portable) {
    out += line_directive(1, "axle_cuda.h");
    out += embedded::runtime_resource("axle_cuda.h");
    out += "\n";
  }
  out += text;
  return out;
}

std::string choose_arch(const std::string& requested, int cc_major, int cc_minor) {
  if (!requested.empty()) return requested;
  const int want = cc_major * 10 + cc_minor;
  const auto& n = nvrtc();
  if (n.loaded && !n.supported_archs.empty()) {
    bool exact = false;
    int best = -1;
    for (int a : n.supported_archs) {
      if (a == want) exact = true;
      if (a <= want) best = a;
    }
    if (!exact && best > 0) return "compute_" + std::to_string(best);
  }
  return "sm_" + std::to_string(want);
}

NvrtcResult compile(const std::string& name, const std::string& text, const std::string& option_lines,
                    const std::string& arch, const std::vector<std::pair<std::string, std::string>>& headers) {
  const auto& n = nvrtc();
  if (!n.loaded) return failed(n.error);
  const int num = arch_number(arch);
  const bool ptx = arch.rfind("compute_", 0) == 0;
  if (num < 0 || (!ptx && arch.rfind("sm_", 0) != 0))
    return failed("invalid CUDA architecture '" + arch + "' (expected sm_XY, sm_XYa or compute_XY)");
  if (!n.supported_archs.empty() && (num < n.supported_archs.front() || num > n.supported_archs.back()))
    return failed("NVRTC " + std::to_string(n.major) + "." + std::to_string(n.minor) + " cannot target " + arch +
                  " (it supports " + arch_range(n.supported_archs) + ")");

  std::vector<std::string> opts = split_lines(option_lines);
  opts.push_back("--gpu-architecture=" + arch);
  std::vector<const char*> argv;
  for (const auto& o : opts) argv.push_back(o.c_str());
  std::vector<const char*> hdr_text, hdr_names;
  for (const auto& [hn, ht] : headers) {
    hdr_names.push_back(hn.c_str());
    hdr_text.push_back(ht.c_str());
  }

  NvrtcResult res;
  res.arch = arch;
  for (const auto& o : opts) res.options += o + "\n";
  const std::string prog_name = name.empty() ? "axle_program.cu" : name;
  nvrtcProgram prog = nullptr;
  nvrtcResult r = n.nvrtcCreateProgram(&prog, text.c_str(), prog_name.c_str(), static_cast<int>(hdr_text.size()),
                                       hdr_text.empty() ? nullptr : hdr_text.data(),
                                       hdr_names.empty() ? nullptr : hdr_names.data());
  if (r != NVRTC_SUCCESS) {
    res.error = std::string("nvrtcCreateProgram failed: ") + n.nvrtcGetErrorString(r);
    res.call = "nvrtcCreateProgram";
    res.status = r;
    return res;
  }
  r = n.nvrtcCompileProgram(prog, static_cast<int>(argv.size()), argv.data());
  std::size_t log_size = 0;
  if (n.nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
    res.log.resize(log_size);
    n.nvrtcGetProgramLog(prog, res.log.data());
    res.log.resize(std::strlen(res.log.c_str()));
  }
  if (r != NVRTC_SUCCESS) {
    res.error = std::string("nvrtcCompileProgram failed: ") + n.nvrtcGetErrorString(r);
    res.call = "nvrtcCompileProgram";
    res.status = r;
    n.nvrtcDestroyProgram(&prog);
    return res;
  }
  std::size_t size = 0;
  if (ptx) {
    r = n.nvrtcGetPTXSize(prog, &size);
    if (r == NVRTC_SUCCESS) {
      res.binary.resize(size);  // includes the terminating NUL
      r = n.nvrtcGetPTX(prog, reinterpret_cast<char*>(res.binary.data()));
    }
  } else {
    r = n.nvrtcGetCUBINSize(prog, &size);
    if (r == NVRTC_SUCCESS) {
      res.binary.resize(size);
      r = n.nvrtcGetCUBIN(prog, reinterpret_cast<char*>(res.binary.data()));
    }
    res.is_cubin = true;
  }
  n.nvrtcDestroyProgram(&prog);
  if (r != NVRTC_SUCCESS || res.binary.empty()) {
    res.call = ptx ? "nvrtcGetPTX" : "nvrtcGetCUBIN";
    res.status = r;
    res.error = res.call + " failed: " + n.nvrtcGetErrorString(r);
    res.binary.clear();
    return res;
  }
  res.ok = true;
  return res;
}

}  // namespace cuda

NvrtcResult nvrtc_compile_for_test(SourceKind kind, const std::string& text, const BuildOptions& options,
                                   const std::string& arch) {
  if (kind == SourceKind::OpenCL) return failed("native OpenCL C cannot be compiled by NVRTC");
  const std::string name = kind == SourceKind::Portable ? "portable.cl" : "cuda.cu";
  std::string full;
  try {
    full = cuda::source_text(kind, define_lines(options), expand_source(text, name, options));
  } catch (const Error& e) {
    return failed(e.what());
  }
  NvrtcResult r =
      cuda::compile(name, full, cuda::native_options(options), arch.empty() ? "sm_80" : arch, options.headers);
  r.text = std::move(full);
  return r;
}

bool nvrtc_available() { return cuda::nvrtc().loaded; }

std::string nvrtc_status() {
  const auto& n = cuda::nvrtc();
  if (!n.loaded) return n.error;
  return "NVRTC " + std::to_string(n.major) + "." + std::to_string(n.minor) + " (" + n.path + "), targets " +
         arch_range(n.supported_archs);
}

}  // namespace detail
}  // namespace axle
