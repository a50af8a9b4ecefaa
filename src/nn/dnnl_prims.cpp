// vd::InnerProductPrims: every oneDNN descriptor and primitive descriptor of the project is
// created here (oneDNN v2 API: op desc -> primitive_desc -> primitive).
#include "nn/dnnl_prims.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "nn/layer.hpp"

namespace vd {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::memory::desc plain_2d(int rows, int cols) {
  return dnnl::memory::desc({rows, cols}, dt::f32, tag::ab);
}

std::string shape_text(const InnerProductShape& s) {
  return "batch " + std::to_string(s.batch) + ", in " + std::to_string(s.in) + ", out " +
         std::to_string(s.out) + (s.relu ? ", ReLU" : "");
}

// oneDNN only reads inputs; its memory handles are untyped void*.
void* handle(const float* p) {
  return const_cast<float*>(p);
}

}  // namespace

dnnl::memory::dims batch_dims(int n, const Shape& shape) {
  if (shape.flat()) return {n, shape.c};
  dnnl::memory::dims dims{n, shape.c};
  for (int64_t v : shape.spatial()) dims.push_back(v);
  return dims;
}

dnnl::memory::format_tag plain_tag(size_t ndims) {
  switch (ndims) {
    case 2:
      return tag::ab;
    case 3:
      return tag::abc;
    case 4:
      return tag::abcd;
    case 5:
      return tag::abcde;
    default:
      throw ShapeError("a layout of " + std::to_string(ndims) + " dimensions");
  }
}

Layout plain_layout(int n, const Shape& shape) {
  const dnnl::memory::dims dims = batch_dims(n, shape);
  return dnnl::memory::desc(dims, dt::f32, plain_tag(dims.size()));
}

bool is_plain(const Layout& layout, int n, const Shape& shape) {
  // Row-major [N, D], [N, C, L], [N, C, H, W] or [N, C, D, H, W] with the same N and values
  // per sample: the same bytes either way.
  const auto dims = layout.dims();
  if (dims.size() < 2 || dims.size() > 5 || dims[0] != n) return false;
  int64_t size = 1;
  for (size_t i = 1; i < dims.size(); ++i) size *= dims[i];
  if (size != shape.size()) return false;
  return layout == dnnl::memory::desc(dims, dt::f32, plain_tag(dims.size()));
}

int channel_block_of(const Layout& layout) {
  const dnnl_memory_desc_t& d = layout.data;
  if (d.ndims < 3 || d.ndims > 5 || d.format_kind != dnnl_blocked || d.data_type != dnnl_f32 ||
      d.offset0 != 0)
    return 0;
  const auto& b = d.format_desc.blocking;
  const int64_t block = b.inner_nblks == 0 ? 1 : b.inner_blks[0];
  if (b.inner_nblks > 1 ||
      (b.inner_nblks == 1 && (b.inner_idxs[0] != 1 || (block != 8 && block != 16))))
    return 0;
  // Dense [N, C/B, spatial..., B]: the strides and the padding that layout implies.
  const int64_t cp = (d.dims[1] + block - 1) / block * block;
  if (d.padded_dims[0] != d.dims[0] || d.padded_dims[1] != cp) return 0;
  int64_t spatial = 1;
  for (int i = 2; i < d.ndims; ++i) {
    if (d.padded_dims[i] != d.dims[i]) return 0;
    spatial *= d.dims[i];
  }
  if (b.strides[0] != cp * spatial || b.strides[1] != spatial * block) return 0;
  int64_t stride = block;
  for (int i = d.ndims - 1; i >= 2; --i) {
    if (b.strides[i] != stride) return 0;
    stride *= d.dims[i];
  }
  return static_cast<int>(block);
}

std::string layout_name(int rank, int block) {
  const std::string axes = rank == 1 ? "w" : rank == 3 ? "dhw" : "hw";
  return block == 1 ? "nc" + axes : "nC" + axes + std::to_string(block) + "c";
}

size_t layout_floats(const Layout& layout) {
  // Rounded up: a bf16 layout of an odd number of values still fits.
  return (layout.get_size() + sizeof(float) - 1) / sizeof(float);
}

namespace {
// A buffer in a oneDNN layout plus the memory object that wraps it.
struct Scratch {
  std::vector<float> data;
  dnnl::memory mem;
  void make(const Layout& md, const dnnl::engine& engine) {
    data.assign(layout_floats(md), 0.0f);
    mem = dnnl::memory(md, engine, data.data());
  }
};
}  // namespace

struct InnerProductPrims::Impl {
  InnerProductShape shape;
  dnnl::engine engine;
  dnnl::inner_product_forward::primitive_desc fwd_pd;
  dnnl::inner_product_forward fwd;
  // User memories, created once; only their data handles change per call (a few ns).
  dnnl::memory src, weights, bias, dst;  // [B, I], [O, I], [B, O] f32

  // bf16 only: the copies the primitives read, converted from the caller's f32 by reorders.
  struct Half {
    Scratch src, weights, diff_dst;  // [B, I], [O, I], [B, O]
    dnnl::reorder src_r, weights_r, diff_dst_r;
    // Whose values the copies hold: src and weights of the last forward, diff_dst of the
    // last backward_weights (nullptr: none yet, or stale after a forward).
    const float* src_of = nullptr;
    const float* weights_of = nullptr;
    const float* diff_dst_of = nullptr;
  };
  std::optional<Half> half;

  struct Backward {
    dnnl::inner_product_backward_data::primitive_desc data_pd;
    dnnl::inner_product_backward_data data;
    dnnl::inner_product_backward_weights::primitive_desc weights_pd;
    dnnl::inner_product_backward_weights weights;
    dnnl::memory diff_src, diff_dst, diff_weights, diff_bias;
  };
  std::optional<Backward> bwd;

  Impl(const dnnl::engine& eng, InnerProductShape s) : shape(s), engine(eng) {
    const auto src_md = plain_2d(s.batch, s.in);
    const auto weights_md = plain_2d(s.out, s.in);
    const auto bias_md = dnnl::memory::desc({s.out}, dt::f32, tag::a);
    const auto dst_md = plain_2d(s.batch, s.out);
    src = dnnl::memory(src_md, engine, DNNL_MEMORY_NONE);
    weights = dnnl::memory(weights_md, engine, DNNL_MEMORY_NONE);
    bias = dnnl::memory(bias_md, engine, DNNL_MEMORY_NONE);
    dst = dnnl::memory(dst_md, engine, DNNL_MEMORY_NONE);
    // bf16: plain bf16 src and weights with f32 bias and dst. Plain, not format_tag::any:
    // oneDNN 2.6's gemm:jit on plain bf16 was faster in all three passes than the brgemm on the
    // blocked layout that any picks (docs/benchmarks.md, "Figures from code comments").
    const bool bf16 = s.precision == Precision::BF16;
    const auto src_c = bf16 ? dnnl::memory::desc({s.batch, s.in}, dt::bf16, tag::ab) : src_md;
    const auto weights_c = bf16 ? dnnl::memory::desc({s.out, s.in}, dt::bf16, tag::ab) : weights_md;
    // forward_training (not inference) so the backward descriptors can use this as a hint.
    dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_training, src_c, weights_c,
                                           bias_md, dst_md);
    dnnl::primitive_attr attr;
    if (s.relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    fwd_pd = dnnl::inner_product_forward::primitive_desc(desc, attr, engine);
    fwd = dnnl::inner_product_forward(fwd_pd);
    if (bf16) {
      half.emplace();
      half->src.make(src_c, engine);
      half->weights.make(weights_c, engine);
      half->diff_dst.make(dnnl::memory::desc({s.batch, s.out}, dt::bf16, tag::ab), engine);
      half->src_r = dnnl::reorder(src, half->src.mem);
      half->weights_r = dnnl::reorder(weights, half->weights.mem);
      half->diff_dst_r =
          dnnl::reorder(dnnl::memory(dst_md, engine, DNNL_MEMORY_NONE), half->diff_dst.mem);
    }
  }

  Backward& backward() {
    if (bwd) return *bwd;
    const auto src_md = fwd_pd.src_desc();
    const auto weights_md = fwd_pd.weights_desc();
    const auto bias_md = fwd_pd.bias_desc();
    const auto dst_md = fwd_pd.dst_desc();
    // The gradients the primitives write are f32 in both precisions (oneDNN 2.6 takes f32
    // diff_src with bf16 diff_dst and weights, and f32 diff_weights and diff_bias with bf16
    // src and diff_dst), so they sum and update in f32; diff_dst is read in src's type.
    const auto diff_src_md = plain_2d(shape.batch, shape.in);
    const auto diff_weights_md = plain_2d(shape.out, shape.in);
    const auto diff_dst_md = dnnl::memory::desc(dst_md.dims(), src_md.data_type(), tag::ab);
    dnnl::inner_product_backward_data::desc data_desc(diff_src_md, weights_md, diff_dst_md);
    dnnl::inner_product_backward_data::primitive_desc data_pd(data_desc, engine, fwd_pd);
    dnnl::inner_product_backward_weights::desc weights_desc(src_md, diff_weights_md, bias_md,
                                                            diff_dst_md);
    dnnl::inner_product_backward_weights::primitive_desc weights_pd(weights_desc, engine, fwd_pd);
    bwd.emplace(Backward{data_pd, dnnl::inner_product_backward_data(data_pd), weights_pd,
                         dnnl::inner_product_backward_weights(weights_pd),
                         dnnl::memory(diff_src_md, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(dst_md, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(diff_weights_md, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(bias_md, engine, DNNL_MEMORY_NONE)});
    return *bwd;
  }

  // bf16: the copy of `p` in `copy`, converted unless it holds p's values already.
  void convert(dnnl::stream& stream, dnnl::reorder& r, dnnl::memory& user, const float* p,
               Scratch& copy, const float*& held) {
    if (held == p) return;
    user.set_data_handle(handle(p));
    r.execute(stream, user, copy.mem);
    held = p;
  }
};

InnerProductPrims::InnerProductPrims(const dnnl::engine& engine, InnerProductShape shape) {
  VD_CHECK(shape.batch > 0 && shape.in > 0 && shape.out > 0, ShapeError,
           "An inner product needs positive sizes, got " + shape_text(shape) + ".");
  try {
    impl_ = std::make_unique<Impl>(engine, shape);
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN inner product forward primitive (" +
                shape_text(shape) + "): " + e.what());
  }
}

InnerProductPrims::~InnerProductPrims() = default;
InnerProductPrims::InnerProductPrims(InnerProductPrims&&) noexcept = default;
InnerProductPrims& InnerProductPrims::operator=(InnerProductPrims&&) noexcept = default;

const InnerProductShape& InnerProductPrims::shape() const {
  return impl_->shape;
}

void InnerProductPrims::forward(dnnl::stream& stream, const float* src, const float* weights,
                                const float* bias, float* dst) {
  Impl& p = *impl_;
  try {
    p.src.set_data_handle(handle(src));
    p.weights.set_data_handle(handle(weights));
    p.bias.set_data_handle(handle(bias));
    p.dst.set_data_handle(dst);
    dnnl::memory src_mem = p.src, weights_mem = p.weights;
    if (p.half) {
      // New values behind the same pointers every step: always convert here.
      Impl::Half& h = *p.half;
      h.src_of = h.weights_of = h.diff_dst_of = nullptr;
      p.convert(stream, h.src_r, p.src, src, h.src, h.src_of);
      p.convert(stream, h.weights_r, p.weights, weights, h.weights, h.weights_of);
      src_mem = h.src.mem;
      weights_mem = h.weights.mem;
    }
    p.fwd.execute(stream, {{DNNL_ARG_SRC, src_mem},
                           {DNNL_ARG_WEIGHTS, weights_mem},
                           {DNNL_ARG_BIAS, p.bias},
                           {DNNL_ARG_DST, p.dst}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN inner product forward pass failed (" + shape_text(p.shape) +
                "): " + e.what());
  }
}

void InnerProductPrims::backward_weights(dnnl::stream& stream, const float* src,
                                         const float* diff_dst, float* diff_weights,
                                         float* diff_bias) {
  Impl& p = *impl_;
  try {
    Impl::Backward& b = p.backward();
    p.src.set_data_handle(handle(src));
    b.diff_dst.set_data_handle(handle(diff_dst));
    b.diff_weights.set_data_handle(diff_weights);
    b.diff_bias.set_data_handle(diff_bias);
    dnnl::memory src_mem = p.src, diff_dst_mem = b.diff_dst;
    if (p.half) {
      Impl::Half& h = *p.half;
      p.convert(stream, h.src_r, p.src, src, h.src, h.src_of);  // forward's copy, normally
      h.diff_dst_of = nullptr;
      p.convert(stream, h.diff_dst_r, b.diff_dst, diff_dst, h.diff_dst, h.diff_dst_of);
      src_mem = h.src.mem;
      diff_dst_mem = h.diff_dst.mem;
    }
    b.weights.execute(stream, {{DNNL_ARG_SRC, src_mem},
                               {DNNL_ARG_DIFF_DST, diff_dst_mem},
                               {DNNL_ARG_DIFF_WEIGHTS, b.diff_weights},
                               {DNNL_ARG_DIFF_BIAS, b.diff_bias}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN inner product weights gradient failed (" + shape_text(p.shape) +
                "): " + e.what());
  }
}

void InnerProductPrims::backward_data(dnnl::stream& stream, const float* diff_dst,
                                      const float* weights, float* diff_src) {
  Impl& p = *impl_;
  try {
    Impl::Backward& b = p.backward();
    b.diff_dst.set_data_handle(handle(diff_dst));
    p.weights.set_data_handle(handle(weights));
    b.diff_src.set_data_handle(diff_src);
    dnnl::memory diff_dst_mem = b.diff_dst, weights_mem = p.weights;
    if (p.half) {
      // Both copies normally exist already: forward's weights, backward_weights' diff_dst.
      Impl::Half& h = *p.half;
      p.convert(stream, h.diff_dst_r, b.diff_dst, diff_dst, h.diff_dst, h.diff_dst_of);
      p.convert(stream, h.weights_r, p.weights, weights, h.weights, h.weights_of);
      diff_dst_mem = h.diff_dst.mem;
      weights_mem = h.weights.mem;
    }
    b.data.execute(stream, {{DNNL_ARG_DIFF_DST, diff_dst_mem},
                            {DNNL_ARG_WEIGHTS, weights_mem},
                            {DNNL_ARG_DIFF_SRC, b.diff_src}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN inner product data gradient failed (" + shape_text(p.shape) +
                "): " + e.what());
  }
}

std::string InnerProductPrims::impl_info() {
  try {
    Impl::Backward& b = impl_->backward();
    return std::string("forward=") + impl_->fwd_pd.impl_info_str() +
           ", backward_data=" + b.data_pd.impl_info_str() +
           ", backward_weights=" + b.weights_pd.impl_info_str();
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN inner product backward primitives (" +
                shape_text(impl_->shape) + "): " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Reorder

struct ReorderPrims::Impl {
  dnnl::reorder prim;
  dnnl::memory src, dst;
};

ReorderPrims::ReorderPrims(const dnnl::engine& engine, const Layout& from, const Layout& to) {
  try {
    impl_ = std::make_unique<Impl>();
    impl_->src = dnnl::memory(from, engine, DNNL_MEMORY_NONE);
    impl_->dst = dnnl::memory(to, engine, DNNL_MEMORY_NONE);
    impl_->prim = dnnl::reorder(dnnl::reorder::primitive_desc(engine, from, engine, to));
  } catch (const dnnl::error& e) {
    throw Error(std::string("Could not create a oneDNN reorder: ") + e.what());
  }
}

ReorderPrims::~ReorderPrims() = default;

void ReorderPrims::run(dnnl::stream& stream, const float* src, float* dst) {
  try {
    impl_->src.set_data_handle(handle(src));
    impl_->dst.set_data_handle(dst);
    impl_->prim.execute(stream, impl_->src, impl_->dst);
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error(std::string("A oneDNN reorder failed: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Convolution and transposed convolution

namespace {

// "3x5": the sizes joined by x, or one size when they are all the same.
std::string axes_text(const std::vector<int64_t>& v, bool collapse) {
  std::string t;
  const bool same = std::all_of(v.begin(), v.end(), [&](int64_t x) { return x == v[0]; });
  for (size_t i = 0; i < (collapse && same ? std::min<size_t>(v.size(), 1) : v.size()); ++i) {
    if (i) t += 'x';
    t += std::to_string(v[i]);
  }
  return t;
}

std::string shape_text(const ConvShape& s) {
  return std::string(s.transposed ? "transposed convolution" : "convolution") + " batch " +
         std::to_string(s.batch) + ", " + std::to_string(s.ic) + "x" +
         axes_text(s.src_spatial(), false) + " -> " + std::to_string(s.oc) + "x" +
         axes_text(s.dst_spatial(), false) + ", kernel " + axes_text(s.kernel_dims(), true) +
         ", stride " + axes_text(s.stride_dims(), true) + ", padding " +
         axes_text(s.pad_dims(), true);
}

// A memory wrapping caller-owned data in `md`, plus a reorder into/out of `want` if differs.
struct Port {
  dnnl::memory user;           // caller's memory, handle set per call
  std::optional<Scratch> own;  // the primitive's layout, when it differs
  dnnl::reorder reorder;       // user -> own (inputs) or own -> user (outputs)
  void make(const Layout& user_md, const Layout& want, const dnnl::engine& engine, bool input) {
    user = dnnl::memory(user_md, engine, DNNL_MEMORY_NONE);
    if (user_md == want) return;
    own.emplace();
    own->make(want, engine);
    reorder = input ? dnnl::reorder(user, own->mem) : dnnl::reorder(own->mem, user);
  }
  // The memory the primitive should use; for an input, reorders the caller's data first.
  dnnl::memory in(dnnl::stream& stream, const float* p) {
    user.set_data_handle(handle(p));
    if (!own) return user;
    reorder.execute(stream, user, own->mem);
    return own->mem;
  }
  dnnl::memory out(float* p) {
    user.set_data_handle(p);
    return own ? own->mem : user;
  }
  // After the primitive ran: for an output, reorders into the caller's memory.
  void finish(dnnl::stream& stream) {
    if (own) reorder.execute(stream, own->mem, user);
  }
};

}  // namespace

namespace {
ConvLayouts g_conv_layouts = ConvLayouts::Any;

// A 3-D, 4-D or 5-D f32 layout add_bias_act() can walk: plain strides, with at most one inner
// block, over the channels (ncw, nchw, nhwc, nChw8c, nCdhw16c, ...).
bool channel_blocked(const Layout& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.ndims < 3 || d.ndims > 5 || d.format_kind != dnnl_blocked || d.data_type != dnnl_f32)
    return false;
  const auto& b = d.format_desc.blocking;
  return b.inner_nblks == 0 || (b.inner_nblks == 1 && b.inner_idxs[0] == 1);
}

// dst[n, c, spatial...] = act(dst + bias[c]) for the real channels (blocked padding stays
// zero), with oneDNN's ReLU (x > 0 ? x : x * 0, so a negative value gives -0 as the fused
// post-op does).
void add_bias_act(const Layout& md, float* dst, const float* bias, bool relu) {
  const dnnl_memory_desc_t& d = md.data;
  const auto& b = d.format_desc.blocking;
  const int64_t N = d.dims[0], C = d.dims[1];
  const int64_t block = b.inner_nblks == 1 ? b.inner_blks[0] : 1;
  const int64_t* st = b.strides;  // of the outer dimensions, in elements
  // The spatial axes as depth x height x width, a missing one of size 1 (any stride).
  const int sp = d.ndims - 2;
  const int64_t D = sp == 3 ? d.dims[2] : 1, H = sp >= 2 ? d.dims[d.ndims - 2] : 1;
  const int64_t W = d.dims[d.ndims - 1];
  const int64_t sd = sp == 3 ? st[2] : 0, sh = sp >= 2 ? st[d.ndims - 2] : 0;
  const int64_t sw = st[d.ndims - 1];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb * block < C; ++cb) {
      const int64_t width = std::min(block, C - cb * block);
      const float* bc = bias + cb * block;
      for (int64_t z = 0; z < D; ++z)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            float* p = dst + n * st[0] + cb * st[1] + z * sd + h * sh + w * sw;
            if (relu) {
#pragma omp simd
              for (int64_t i = 0; i < width; ++i) {
                const float v = p[i] + bc[i];
                p[i] = v > 0.0f ? v : v * 0.0f;
              }
            } else {
#pragma omp simd
              for (int64_t i = 0; i < width; ++i) p[i] += bc[i];
            }
          }
    }
}
}  // namespace

namespace {
std::vector<int64_t> per_axis(const std::vector<int>& given, int every, int rank) {
  if (!given.empty()) return std::vector<int64_t>(given.begin(), given.end());
  return std::vector<int64_t>(static_cast<size_t>(rank), every);
}
}  // namespace

std::vector<int64_t> ConvShape::src_spatial() const {
  if (rank == 1) return {iw};
  if (rank == 3) return {id, ih, iw};
  return {ih, iw};
}

std::vector<int64_t> ConvShape::dst_spatial() const {
  if (rank == 1) return {ow};
  if (rank == 3) return {od, oh, ow};
  return {oh, ow};
}

std::vector<int64_t> ConvShape::kernel_dims() const {
  return per_axis(kernels, kernel, rank);
}

std::vector<int64_t> ConvShape::stride_dims() const {
  return per_axis(strides, stride, rank);
}

std::vector<int64_t> ConvShape::pad_dims() const {
  return per_axis(pads, pad, rank);
}

int64_t ConvShape::kernel_volume() const {
  int64_t v = 1;
  for (int64_t k : kernel_dims()) v *= k;
  return v;
}

double ConvShape::flops() const {
  // The smaller side's values times the other side's channels times prod(K).
  double small = transposed ? ic : oc;
  for (int64_t v : transposed ? src_spatial() : dst_spatial()) small *= static_cast<double>(v);
  return 2.0 * batch * small * (transposed ? oc : ic) * static_cast<double>(kernel_volume());
}

void set_conv_layouts(ConvLayouts layouts) {
  g_conv_layouts = layouts;
}

struct ConvPrims::Impl {
  ConvShape s;
  dnnl::engine engine;
  dnnl::algorithm alg;
  dnnl::memory::dims strides, pad_l, pad_r;             // per spatial axis
  dnnl::memory::dims src_dims, dst_dims, weights_dims;  // {N, C, spatial...}, {OC, IC, K...}
  tag act;  // the activations' layout: any, or plain in ConvLayouts::Plain (when built)
  Layout src_user, weights_user, bias_md;
  // forward_training so the backward descriptors can take it as their hint
  dnnl::primitive_desc fwd_pd;  // a shared handle to one of the two typed ones below
  std::optional<dnnl::convolution_forward::primitive_desc> conv_pd;
  std::optional<dnnl::deconvolution_forward::primitive_desc> deconv_pd;
  dnnl::primitive fwd;
  Port src, weights, dst;
  dnnl::memory bias;
  // Transposed only: bias (+ ReLU) added by add_bias_act() after a bare deconvolution.
  bool own_bias = false;
  struct Backward {
    dnnl::primitive_desc data_pd, weights_pd;
    dnnl::primitive data, weights_prim;
    Port data_diff_dst, data_weights, diff_src;  // backward-data ports
    Port w_src, w_diff_dst, diff_weights;        // backward-weights ports
    dnnl::memory diff_bias;
  };
  std::optional<Backward> bwd;

  Impl(const dnnl::engine& eng, const ConvShape& sh, const Layout& src_layout)
      : s(sh), engine(eng) {
    alg =
        s.transposed ? dnnl::algorithm::deconvolution_direct : dnnl::algorithm::convolution_direct;
    strides = s.stride_dims();
    pad_l = s.pad_dims();
    // The right padding that makes the sizes exact (it absorbs PyTorch's floor for a
    // convolution and the output padding of a transposed one), per axis.
    const auto in = s.src_spatial(), out = s.dst_spatial(), k = s.kernel_dims();
    pad_r.clear();
    for (size_t a = 0; a < in.size(); ++a)
      pad_r.push_back(s.transposed ? (in[a] - 1) * strides[a] + k[a] - pad_l[a] - out[a]
                                   : (out[a] - 1) * strides[a] + k[a] - in[a] - pad_l[a]);
    src_dims = {s.batch, s.ic};
    dst_dims = {s.batch, s.oc};
    weights_dims = {s.oc, s.ic};
    src_dims.insert(src_dims.end(), in.begin(), in.end());
    dst_dims.insert(dst_dims.end(), out.begin(), out.end());
    weights_dims.insert(weights_dims.end(), k.begin(), k.end());
    src_user = src_layout;
    // PyTorch's weights: oiw/oihw/oidhw, or iow/iohw/iodhw for a transposed convolution.
    const size_t nd = weights_dims.size();
    const tag transposed_tag = nd == 3 ? tag::bac : nd == 4 ? tag::iohw : tag::iodhw;
    weights_user =
        dnnl::memory::desc(weights_dims, dt::f32, s.transposed ? transposed_tag : plain_tag(nd));
    bias_md = dnnl::memory::desc({s.oc}, dt::f32, tag::a);
    act = g_conv_layouts == ConvLayouts::Plain ? plain_tag(nd) : tag::any;
    // bf16 reads src and weights in bf16 and writes dst in f32 (the next layer and the loss
    // read f32), so the activations between layers stay f32.
    const auto src_any = dnnl::memory::desc(src_dims, cdt(), act);
    const auto dst_any = dnnl::memory::desc(dst_dims, dt::f32, act);
    const auto w_any = dnnl::memory::desc(weights_dims, cdt(), tag::any);
    dnnl::primitive_attr attr;
    if (s.relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    const auto prop = dnnl::prop_kind::forward_training;
    if (s.transposed) {
      // oneDNN 2.6 runs a deconvolution as a backward-data convolution and then adds the bias
      // and applies post-ops in a scalar reference loop, several times slower with bias + ReLU
      // (docs/benchmarks.md, "Figures from code comments"; its binary primitive, tried
      // instead, also ran the reference loop). So the deconvolution runs bare and add_bias_act()
      // adds the bias and applies the ReLU in one vectorised pass over dst, with the same
      // arithmetic (one f32 add, then oneDNN's ReLU: x > 0 ? x : x * 0). Layouts it does not know
      // keep the fused primitive.
      const dnnl::deconvolution_forward::desc bare(prop, alg, src_any, w_any, dst_any, strides,
                                                   pad_l, pad_r);
      deconv_pd.emplace(bare, engine);
      own_bias = channel_blocked(deconv_pd->dst_desc());
      if (!own_bias) {
        const dnnl::deconvolution_forward::desc d(prop, alg, src_any, w_any, bias_md, dst_any,
                                                  strides, pad_l, pad_r);
        deconv_pd.emplace(d, attr, engine);
      }
      fwd = dnnl::deconvolution_forward(*deconv_pd);
      fwd_pd = *deconv_pd;
    } else {
      dnnl::convolution_forward::desc d(prop, alg, src_any, w_any, bias_md, dst_any, strides, pad_l,
                                        pad_r);
      conv_pd.emplace(d, attr, engine);
      fwd = dnnl::convolution_forward(*conv_pd);
      fwd_pd = *conv_pd;
    }
    src.make(src_user, fwd_pd.src_desc(), engine, true);
    weights.make(weights_user, fwd_pd.weights_desc(), engine, true);
    // dst stays in the primitive's layout: the next oneDNN layer reads it as it is.
    dst.make(fwd_pd.dst_desc(), fwd_pd.dst_desc(), engine, false);
    bias = dnnl::memory(bias_md, engine, DNNL_MEMORY_NONE);
  }

  Backward& backward() {
    if (bwd) return *bwd;
    // The gradients are written in f32 (diff_src, diff_weights, diff_bias; oneDNN 2.6 supports
    // them with bf16 diff_dst, src and weights), so they sum and update in f32. In f32 all
    // pairs below are the same descriptor.
    // The weight gradient stays f32 even in bf16 (src and diff_dst are f32 in the caller's
    // memory anyway) where oneDNN 2.6's bf16 backward-weights is the slower one: for every
    // transposed convolution, and on AMX for a convolution of few input channels, whose tiles
    // it fills with padding (docs/benchmarks.md has both measurements).
    const bool f32_weight_grad = s.transposed || (s.ic < 8 && cpu_has_amx_bf16());
    const dt wdt = f32_weight_grad ? dt::f32 : cdt();
    const Io io{dnnl::memory::desc(src_dims, wdt, act),
                dnnl::memory::desc(src_dims, dt::f32, act),
                dnnl::memory::desc(weights_dims, cdt(), tag::any),
                dnnl::memory::desc(weights_dims, dt::f32, tag::any),
                dnnl::memory::desc(dst_dims, cdt(), act),
                dnnl::memory::desc(dst_dims, wdt, act)};
    Backward b;
    if (s.transposed)
      make_backward<dnnl::deconvolution_backward_data, dnnl::deconvolution_backward_weights>(
          b, *deconv_pd, io);
    else
      make_backward<dnnl::convolution_backward_data, dnnl::convolution_backward_weights>(
          b, *conv_pd, io);
    const Layout dst_md = fwd_pd.dst_desc();
    b.data_diff_dst.make(dst_md, b.data_pd.diff_dst_desc(), engine, true);
    // backward-data reads the weights forward() reordered, reordered again only if it
    // wants another layout.
    b.data_weights.make(fwd_pd.weights_desc(), b.data_pd.weights_desc(), engine, true);
    b.diff_src.make(src_user, b.data_pd.diff_src_desc(), engine, false);
    b.w_src.make(src_user, b.weights_pd.src_desc(), engine, true);
    b.w_diff_dst.make(dst_md, b.weights_pd.diff_dst_desc(), engine, true);
    b.diff_weights.make(weights_user, b.weights_pd.diff_weights_desc(), engine, false);
    b.diff_bias = dnnl::memory(bias_md, engine, DNNL_MEMORY_NONE);
    bwd.emplace(std::move(b));
    return *bwd;
  }

  // The descriptors of the backward passes: src (backward-weights) and weights as the primitives
  // read them, the gradients as they write them, diff_dst as they read it.
  struct Io {
    Layout src, diff_src, weights, diff_weights, diff_dst;
    Layout weights_diff_dst;  // diff_dst as backward-weights reads it
  };
  // Backward-data and backward-weights primitives of a (de)convolution, the forward pd as hint.
  template <class Data, class Weights, class Hint>
  void make_backward(Backward& b, const Hint& hint, const Io& io) {
    const typename Data::desc dd(alg, io.diff_src, io.weights, io.diff_dst, strides, pad_l, pad_r);
    const typename Data::primitive_desc dpd(dd, engine, hint);
    const typename Weights::desc wd(alg, io.src, io.diff_weights, bias_md, io.weights_diff_dst,
                                    strides, pad_l, pad_r);
    const typename Weights::primitive_desc wpd(wd, engine, hint);
    b.data = Data(dpd);
    b.weights_prim = Weights(wpd);
    b.data_pd = dpd;
    b.weights_pd = wpd;
  }
  dt cdt() const { return s.precision == Precision::BF16 ? dt::bf16 : dt::f32; }

  // The weights in the forward primitive's layout (valid after a forward call).
  const float* fwd_weights(const float* user) const {
    return weights.own ? weights.own->data.data() : user;
  }
  const float* last_user_weights = nullptr;
  // The activations the ports converted last: forward's src (reused by backward_weights when it
  // wants the same layout) and backward_weights' diff_dst (reused by backward_data alike).
  const float* last_src = nullptr;
  const float* last_diff_dst = nullptr;
};

ConvPrims::ConvPrims(const dnnl::engine& engine, const ConvShape& shape, const Layout& src_layout) {
  const auto positive = [](const std::vector<int64_t>& v, int64_t least) {
    return std::all_of(v.begin(), v.end(), [&](int64_t x) { return x >= least; });
  };
  const size_t r = static_cast<size_t>(shape.rank);
  VD_CHECK(shape.rank >= 1 && shape.rank <= 3 &&
               (shape.kernels.empty() || shape.kernels.size() == r) &&
               (shape.strides.empty() || shape.strides.size() == r) &&
               (shape.pads.empty() || shape.pads.size() == r),
           ShapeError,
           "A convolution has 1 to 3 spatial axes and one kernel size, stride and padding for "
           "each (or one for all), got rank " +
               std::to_string(shape.rank) + ".");
  VD_CHECK(shape.batch > 0 && shape.ic > 0 && shape.oc > 0 && positive(shape.src_spatial(), 1) &&
               positive(shape.dst_spatial(), 1) && positive(shape.kernel_dims(), 1) &&
               positive(shape.stride_dims(), 1) && positive(shape.pad_dims(), 0),
           ShapeError, "A convolution needs positive sizes, got " + shape_text(shape) + ".");
  try {
    impl_ = std::make_unique<Impl>(engine, shape, src_layout);
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN " + shape_text(shape) +
                " forward primitive: " + e.what());
  }
}

ConvPrims::~ConvPrims() = default;
ConvPrims::ConvPrims(ConvPrims&&) noexcept = default;
ConvPrims& ConvPrims::operator=(ConvPrims&&) noexcept = default;

const ConvShape& ConvPrims::shape() const {
  return impl_->s;
}

Layout ConvPrims::dst_layout() const {
  return impl_->fwd_pd.dst_desc();
}

Layout ConvPrims::wanted_src_layout() const {
  return impl_->fwd_pd.src_desc();
}

void ConvPrims::forward(dnnl::stream& stream, const float* src, const float* weights,
                        const float* bias, float* dst) {
  Impl& p = *impl_;
  try {
    p.bias.set_data_handle(handle(bias));
    const dnnl::memory dst_mem = p.dst.out(dst);
    if (p.own_bias) {
      p.fwd.execute(stream, {{DNNL_ARG_SRC, p.src.in(stream, src)},
                             {DNNL_ARG_WEIGHTS, p.weights.in(stream, weights)},
                             {DNNL_ARG_DST, dst_mem}});
      stream.wait();
      add_bias_act(p.fwd_pd.dst_desc(), dst, bias, p.s.relu);
    } else {
      p.fwd.execute(stream, {{DNNL_ARG_SRC, p.src.in(stream, src)},
                             {DNNL_ARG_WEIGHTS, p.weights.in(stream, weights)},
                             {DNNL_ARG_BIAS, p.bias},
                             {DNNL_ARG_DST, dst_mem}});
    }
    stream.wait();
    p.last_user_weights = weights;
    p.last_src = src;
    p.last_diff_dst = nullptr;
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN " + shape_text(p.s) + " forward pass failed: " + e.what());
  }
}

void ConvPrims::backward_weights(dnnl::stream& stream, const float* src, const float* diff_dst,
                                 float* diff_weights, float* diff_bias) {
  Impl& p = *impl_;
  try {
    Impl::Backward& b = p.backward();
    b.diff_bias.set_data_handle(diff_bias);
    // forward()'s converted src, when it is the same src in the same layout (a reorder gives
    // the same bytes again; in bf16 each is a conversion of the whole activation).
    const bool reuse_src = p.src.own && b.w_src.own && src == p.last_src &&
                           b.weights_pd.src_desc() == p.fwd_pd.src_desc();
    const dnnl::memory src_mem = reuse_src ? p.src.own->mem : b.w_src.in(stream, src);
    b.weights_prim.execute(stream, {{DNNL_ARG_SRC, src_mem},
                                    {DNNL_ARG_DIFF_DST, b.w_diff_dst.in(stream, diff_dst)},
                                    {DNNL_ARG_DIFF_WEIGHTS, b.diff_weights.out(diff_weights)},
                                    {DNNL_ARG_DIFF_BIAS, b.diff_bias}});
    b.diff_weights.finish(stream);
    stream.wait();
    p.last_diff_dst = diff_dst;
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN " + shape_text(p.s) + " weights gradient failed: " + e.what());
  }
}

void ConvPrims::backward_data(dnnl::stream& stream, const float* diff_dst, float* diff_src) {
  Impl& p = *impl_;
  VD_CHECK(p.last_user_weights, Error,
           "ConvPrims::backward_data needs a forward() call first (it reuses its weights).");
  try {
    Impl::Backward& b = p.backward();
    // backward_weights()' converted diff_dst, when it is the same diff_dst in the same layout.
    const bool reuse = b.data_diff_dst.own && b.w_diff_dst.own && diff_dst == p.last_diff_dst &&
                       b.data_pd.diff_dst_desc() == b.weights_pd.diff_dst_desc();
    const dnnl::memory diff_dst_mem =
        reuse ? b.w_diff_dst.own->mem : b.data_diff_dst.in(stream, diff_dst);
    b.data.execute(
        stream, {{DNNL_ARG_DIFF_DST, diff_dst_mem},
                 {DNNL_ARG_WEIGHTS, b.data_weights.in(stream, p.fwd_weights(p.last_user_weights))},
                 {DNNL_ARG_DIFF_SRC, b.diff_src.out(diff_src)}});
    b.diff_src.finish(stream);
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN " + shape_text(p.s) + " data gradient failed: " + e.what());
  }
}

std::string ConvPrims::impl_info() {
  try {
    Impl::Backward& b = impl_->backward();
    const auto reorders = [&]() {
      std::string r;
      if (impl_->src.own) r += " src";
      if (b.data_diff_dst.own || b.w_diff_dst.own) r += " diff_dst";
      if (b.diff_src.own) r += " diff_src";
      return r.empty() ? std::string(" none") : r;
    };
    return std::string("forward=") + impl_->fwd_pd.impl_info_str() +
           ", backward_data=" + b.data_pd.impl_info_str() +
           ", backward_weights=" + b.weights_pd.impl_info_str() +
           ", activation reorders:" + reorders();
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN " + shape_text(impl_->s) +
                " backward primitives: " + e.what());
  }
}

}  // namespace vd
