// axle::blas public entry points: validation and normalisation to a row-major GemmDesc.
#include "axle/blas.hpp"

#include <climits>
#include <cmath>
#include <sstream>

#include "gemm_desc.hpp"
#include "gemm_dispatch.hpp"
#include "gemm_tuning.hpp"

namespace axle::blas {
namespace detail {
namespace {

const char* type_name(int code) {
  switch (code) {
    case 0: return "float";
    case 1: return "half_t";
    case 2: return "bfloat16_t";
    case 3: return "double";
  }
  return "?";
}

ElemType elem_type(int code) {
  switch (code) {
    case 1: return ElemType::F16;
    case 2: return ElemType::BF16;
    case 3: return ElemType::F64;
    default: return ElemType::F32;
  }
}

const char* layout_name(Layout l) { return l == Layout::RowMajor ? "row-major" : "column-major"; }

// Checks one operand stored as `lines` lines of `len` elements, `ld` apart, `batch`
// times `stride` apart. `what` is e.g. "A (op N, m=3 x k=5, row-major)".
void check_operand(const char* name, const OperandRef& op, const std::string& what, std::size_t lines,
                   std::size_t len, std::size_t ld, const char* ld_name, std::size_t batch, std::size_t stride,
                   const char* stride_name, const Device& device, bool is_output) {
  if (!op.buffer) throw InvalidArgument(std::string("gemm: operand ") + name + " is an empty view");
  if (op.buffer->device() != device)
    throw InvalidArgument(std::string("gemm: operand ") + name + " lives on " + op.buffer->device().id() +
                          " but the stream is on " + device.id());
  if (ld < std::max<std::size_t>(1, len))
    throw InvalidArgument(std::string("gemm: ") + ld_name + " = " + std::to_string(ld) + " is less than " +
                          std::to_string(std::max<std::size_t>(1, len)) + ", the length of a stored line of " +
                          name + " " + what);
  if (ld > static_cast<std::size_t>(INT_MAX))
    throw InvalidArgument(std::string("gemm: ") + ld_name + " = " + std::to_string(ld) + " exceeds " +
                          std::to_string(INT_MAX));
  if (lines == 0 || len == 0) return;
  const std::size_t one = (lines - 1) * ld + len;
  if (batch > 1 && is_output && stride != 0 && stride < one)
    throw InvalidArgument(std::string("gemm: ") + stride_name + " = " + std::to_string(stride) +
                          " makes the outputs of consecutive batches overlap (one " + name + " " + what + " spans " +
                          std::to_string(one) + " elements)");
  if (batch > 1 && is_output && stride == 0)
    throw InvalidArgument(std::string("gemm: ") + stride_name + " = 0 would write every batch to the same " + name);
  const double need_d = static_cast<double>(batch - 1) * static_cast<double>(stride) + static_cast<double>(one);
  const std::size_t need = (batch - 1) * stride + one;
  if (need_d > static_cast<double>(op.size) || need > op.size) {
    std::ostringstream s;
    s << "gemm: operand " << name << " " << what << " with " << ld_name << " = " << ld;
    if (batch > 1) s << ", " << stride_name << " = " << stride << " and batch = " << batch;
    s << " needs " << need << " elements but its view holds " << op.size;
    throw OutOfRange(s.str());
  }
}

void validate(const Stream& stream, const GemmCall& c, const Epilogue& ep) {
  if (!stream.valid()) throw InvalidArgument("gemm: the stream is empty (moved-from)");
  const Device& dev = stream.device();
  for (auto [v, name] : {std::pair{c.m, "m"}, std::pair{c.n, "n"}, std::pair{c.k, "k"}})
    if (v > kMaxGemmDim)
      throw InvalidArgument(std::string("gemm: ") + name + " = " + std::to_string(v) + " exceeds " +
                            std::to_string(kMaxGemmDim) + " (2^30), the largest size the kernels index");
  if (c.batch == 0) throw InvalidArgument("gemm: batch count is 0");
  if (c.batch > static_cast<std::size_t>(INT_MAX))
    throw InvalidArgument("gemm: batch count " + std::to_string(c.batch) + " exceeds " + std::to_string(INT_MAX));
  const bool f64 = c.a.type == 3 || c.b.type == 3 || c.c.type == 3;
  if (f64 && !(c.a.type == 3 && c.b.type == 3 && c.c.type == 3))
    throw InvalidArgument(std::string("gemm: double operands cannot be mixed with other types (A is ") +
                          type_name(c.a.type) + ", B " + type_name(c.b.type) + ", C " + type_name(c.c.type) + ")");
  if (f64 && !dev.info().fp64)
    throw Unsupported("gemm: double precision is not supported by " + dev.name() + " (" + dev.id() + ")");

  const bool row = c.layout == Layout::RowMajor;
  const bool ta = c.trans_a == Op::T, tb = c.trans_b == Op::T;
  // Stored shape of each operand, in (lines, line length) for its layout.
  const std::size_t a_rows = ta ? c.k : c.m, a_cols = ta ? c.m : c.k;
  const std::size_t b_rows = tb ? c.n : c.k, b_cols = tb ? c.k : c.n;
  auto shape = [&](const char* tag, std::size_t r, std::size_t cols) {
    return std::string("(") + tag + ": " + std::to_string(r) + " x " + std::to_string(cols) + ", " +
           layout_name(c.layout) + ")";
  };
  const std::string a_what = shape(ta ? "op T, stored k x m" : "op N, stored m x k", a_rows, a_cols);
  const std::string b_what = shape(tb ? "op T, stored n x k" : "op N, stored k x n", b_rows, b_cols);
  const std::string c_what = shape("m x n", c.m, c.n);
  const bool empty_product = c.m == 0 || c.n == 0 || c.k == 0;
  {
    // A and B are not read when the product is empty but their leading dimensions are
    // still checked (as BLAS does); their extents only matter when something is read.
    OperandRef a = c.a, b = c.b;
    if (empty_product) a.size = b.size = static_cast<std::size_t>(-1);
    check_operand("A", a, a_what, row ? a_rows : a_cols, row ? a_cols : a_rows, c.lda, "lda", c.batch, c.stride_a,
                  "stride_a", dev, false);
    check_operand("B", b, b_what, row ? b_rows : b_cols, row ? b_cols : b_rows, c.ldb, "ldb", c.batch, c.stride_b,
                  "stride_b", dev, false);
  }
  check_operand("C", c.c, c_what, row ? c.m : c.n, row ? c.n : c.m, c.ldc, "ldc", c.batch, c.stride_c, "stride_c",
                dev, true);
  if (ep.bias_mode != BiasMode::None) {
    const std::size_t want = ep.bias_mode == BiasMode::PerRow ? c.m : c.n;
    const char* mode = ep.bias_mode == BiasMode::PerRow ? "per-row bias needs m = " : "per-column bias needs n = ";
    const bool has = f64 ? ep.bias_f64.valid() : ep.bias.valid();
    if (!has)
      throw InvalidArgument(std::string("gemm: epilogue bias mode is set but no ") + (f64 ? "bias_f64" : "bias") +
                            " view was given" + (f64 ? " (double GEMMs take double bias values)" : ""));
    const std::size_t size = f64 ? ep.bias_f64.size() : ep.bias.size();
    const Device& bdev = f64 ? ep.bias_f64.device() : ep.bias.device();
    if (bdev != dev)
      throw InvalidArgument("gemm: the bias lives on " + bdev.id() + " but the stream is on " + dev.id());
    if (size < want)
      throw OutOfRange(std::string("gemm: epilogue ") + mode + std::to_string(want) + " values but the bias view holds " +
                       std::to_string(size));
  }
}

GemmDesc normalise(const GemmCall& c, const Epilogue& ep, const GemmOptions& opt) {
  GemmDesc d;
  const bool row = c.layout == Layout::RowMajor;
  // Column-major C = op(A) op(B) is row-major C^T = op(B)^T op(A)^T over the same memory.
  const OperandRef& a = row ? c.a : c.b;
  const OperandRef& b = row ? c.b : c.a;
  d.m = row ? c.m : c.n;
  d.n = row ? c.n : c.m;
  d.k = c.k;
  d.trans_a = (row ? c.trans_a : c.trans_b) == Op::T;
  d.trans_b = (row ? c.trans_b : c.trans_a) == Op::T;
  d.a_type = elem_type(a.type);
  d.b_type = elem_type(b.type);
  d.c_type = elem_type(c.c.type);
  d.alpha = c.alpha;
  d.beta = c.beta;
  d.a = a.buffer;
  d.b = b.buffer;
  d.c = c.c.buffer;
  d.a_off = a.offset;
  d.b_off = b.offset;
  d.c_off = c.c.offset;
  d.lda = row ? c.lda : c.ldb;
  d.ldb = row ? c.ldb : c.lda;
  d.ldc = c.ldc;
  d.batch = c.batch;
  d.stride_a = c.batch > 1 ? (row ? c.stride_a : c.stride_b) : 0;
  d.stride_b = c.batch > 1 ? (row ? c.stride_b : c.stride_a) : 0;
  d.stride_c = c.batch > 1 ? c.stride_c : 0;
  if (ep.bias_mode != BiasMode::None) {
    const bool per_row = (ep.bias_mode == BiasMode::PerRow) == row;
    d.bias_kind = per_row ? BiasKind::PerRow : BiasKind::PerCol;
    if (d.c_type == ElemType::F64) {
      d.bias = &ep.bias_f64.buffer();
      d.bias_off = ep.bias_f64.offset();
    } else {
      d.bias = &ep.bias.buffer();
      d.bias_off = ep.bias.offset();
    }
  }
  d.act = ep.activation == Activation::ReLU ? Act::ReLU : ep.activation == Activation::GELU ? Act::GELU : Act::None;
  d.allow_tf32 = opt.allow_tf32;
  return d;
}

}  // namespace

void gemm_entry(Stream& stream, const GemmCall& call, const Epilogue& epilogue, const GemmOptions& options) {
  validate(stream, call, epilogue);
  if (call.m == 0 || call.n == 0) return;
  run_gemm(stream, normalise(call, epilogue, options));
}

void gemm_batched_entry(Stream& stream, const std::vector<GemmCall>& calls, const Epilogue& epilogue,
                        const GemmOptions& options) {
  for (std::size_t i = 0; i < calls.size(); ++i) {
    try {
      validate(stream, calls[i], epilogue);
    } catch (const OutOfRange& e) {
      throw OutOfRange("gemm_batched entry " + std::to_string(i) + ": " + e.message());
    } catch (const InvalidArgument& e) {
      throw InvalidArgument("gemm_batched entry " + std::to_string(i) + ": " + e.message());
    }
  }
  if (calls.empty() || calls[0].m == 0 || calls[0].n == 0) return;
  for (const GemmCall& c : calls) run_gemm(stream, normalise(c, epilogue, options));
}

}  // namespace detail

std::string describe_gemm_plan(const Device& device, int dtype, std::size_t m, std::size_t n, std::size_t k) {
  const detail::ElemType t = detail::elem_type(dtype);
  const detail::GemmParams& p = detail::chosen_params(device, t, m, n, k);
  return p.str() + " [" + p.origin + "]";
}

void reset_gemm_caches() {
  detail::reset_dispatch_caches();
  detail::reset_tuning_cache();
}

}  // namespace axle::blas
