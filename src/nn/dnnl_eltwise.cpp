// vd::EltwisePrims and vd::ResamplingPrims: the oneDNN eltwise and resampling descriptors of the
// project are created here (oneDNN v2 API: op desc -> primitive_desc -> primitive).
#include "nn/dnnl_eltwise.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vd {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using alg = dnnl::algorithm;

// oneDNN only reads inputs; its memory handles are untyped void*.
void* handle(const float* p) {
  return const_cast<float*>(p);
}

// A blocked layout whose channels are not a multiple of the block has padding.
bool has_padding(const Layout& md) {
  const dnnl_memory_desc_t& d = md.data;
  for (int i = 0; i < d.ndims; ++i)
    if (d.padded_dims[i] != d.dims[i]) return true;
  return false;
}

// The offset in elements of logical position `pos` (each below padded_dims) in a blocked
// layout: inner blocks innermost, then the outer strides (oneDNN's memory_desc_wrapper::off_v).
int64_t blocked_offset(const dnnl_memory_desc_t& d, int64_t pos[DNNL_MAX_NDIMS]) {
  const auto& b = d.format_desc.blocking;
  int64_t off = 0, stride = 1;
  for (int k = b.inner_nblks - 1; k >= 0; --k) {
    const int dim = b.inner_idxs[k];
    off += pos[dim] % b.inner_blks[k] * stride;
    pos[dim] /= b.inner_blks[k];
    stride *= b.inner_blks[k];
  }
  for (int i = 0; i < d.ndims; ++i) off += pos[i] * b.strides[i];
  return d.offset0 + off;
}

// Writes 0 to every padded element of `data` in layout `md` (the channels past C in nChw16c),
// touching nothing else. oneDNN 2.6 does not do it for us: setting a memory's handle leaves the
// padding as it is, and the eltwise jit computes f on the padding (sigmoid(0) = 0.5, and
// whatever an input held there). For each padded dimension k, the positions with coordinate k
// in the padding, the dimensions before k within their sizes (so no position twice) and those
// after k over their padded sizes.
// Channel-blocked layouts (nChw16c: one inner block, of the channels, the only padded
// dimension) take a fast path: per pixel, the tail of the last channel block is contiguous.
void zero_padding(const Layout& md, float* data) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked) return;
  const int nd = d.ndims;
  const auto& b = d.format_desc.blocking;
  bool channels_only = nd >= 2 && b.inner_nblks == 1 && b.inner_idxs[0] == 1;
  for (int i = 0; i < nd; ++i)
    channels_only = channels_only && (i == 1 || d.padded_dims[i] == d.dims[i]);
  if (channels_only) {
    const int64_t block = b.inner_blks[0], from = d.dims[1] % block;
    if (from == 0) return;
    // The last channel block of every (n, spatial) position: dimensions other than 1.
    int64_t pos[DNNL_MAX_NDIMS] = {};
    const int64_t base = d.offset0 + d.dims[1] / block * b.strides[1];
    for (bool more = d.dims[0] > 0; more;) {
      int64_t off = base;
      for (int i = 0; i < nd; ++i)
        if (i != 1) off += pos[i] * b.strides[i];
      std::fill(data + off + from, data + off + block, 0.0f);
      int i = nd - 1;
      for (; i >= 0; --i) {
        if (i == 1) continue;
        if (++pos[i] < d.dims[i]) break;
        pos[i] = 0;
      }
      more = i >= 0;
    }
    return;
  }
  for (int k = 0; k < nd; ++k) {
    if (d.padded_dims[k] == d.dims[k]) continue;
    int64_t lo[DNNL_MAX_NDIMS], hi[DNNL_MAX_NDIMS], pos[DNNL_MAX_NDIMS], tmp[DNNL_MAX_NDIMS];
    for (int i = 0; i < nd; ++i) {
      lo[i] = i == k ? d.dims[i] : 0;
      hi[i] = i < k ? d.dims[i] : d.padded_dims[i];
      pos[i] = lo[i];
    }
    bool empty = false;
    for (int i = 0; i < nd; ++i) empty = empty || lo[i] >= hi[i];
    while (!empty) {
      std::copy(pos, pos + nd, tmp);
      data[blocked_offset(d, tmp)] = 0.0f;
      int i = nd - 1;  // the next position, last dimension fastest
      while (i >= 0 && ++pos[i] == hi[i]) {
        pos[i] = lo[i];
        --i;
      }
      if (i < 0) break;
    }
  }
}

std::string dims_text(const Layout& md) {
  std::string s;
  for (auto d : md.dims()) {
    if (!s.empty()) s += 'x';
    s += std::to_string(d);
  }
  return s;
}

// "nc", "nchw", "nhwc", "nChw16c": the layouts of activations, for the implementation log.
std::string layout_text(const Layout& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind == dnnl_blocked && d.ndims == 2 && d.format_desc.blocking.inner_nblks == 0)
    return d.format_desc.blocking.strides[1] == 1 ? "nc" : "other";
  if (d.format_kind != dnnl_blocked || d.ndims != 4) return "other";
  const auto& b = d.format_desc.blocking;
  const auto* st = b.strides;
  const std::string outer = st[0] >= st[1] && st[1] >= st[2] && st[2] >= st[3]   ? "nchw"
                            : st[0] >= st[2] && st[2] >= st[3] && st[3] >= st[1] ? "nhwc"
                                                                                 : "other";
  if (b.inner_nblks == 0) return outer;
  if (b.inner_nblks == 1 && b.inner_idxs[0] == 1 && outer == "nchw")
    return "nChw" + std::to_string(b.inner_blks[0]) + "c";
  return "blocked";
}

const char* op_name(EltwiseOp op) {
  switch (op) {
    case EltwiseOp::Silu:
      return "silu";
    case EltwiseOp::Gelu:
      return "gelu";
    case EltwiseOp::LeakyRelu:
      return "leakyrelu";
    case EltwiseOp::Tanh:
      return "tanh";
    case EltwiseOp::Sigmoid:
      return "sigmoid";
  }
  return "?";
}

// The oneDNN algorithm and its alpha (beta is 0 for all of them). A use_dst_for_bwd variant
// computes the same forward; the backward descriptor then reads dst.
struct Algorithm {
  alg a;
  float alpha;
  bool uses_dst;
};
Algorithm algorithm_of(EltwiseOp op, float slope) {
  switch (op) {
    case EltwiseOp::Silu:
      return {alg::eltwise_swish, 1.0f, false};  // x * sigmoid(alpha x)
    case EltwiseOp::Gelu:
      return {alg::eltwise_gelu_erf, 0.0f, false};
    case EltwiseOp::LeakyRelu:
      // From dst only when the sign of dst is the sign of src (oneDNN requires alpha >= 0).
      if (slope >= 0.0f) return {alg::eltwise_relu_use_dst_for_bwd, slope, true};
      return {alg::eltwise_relu, slope, false};
    case EltwiseOp::Tanh:
      return {alg::eltwise_tanh_use_dst_for_bwd, 0.0f, true};
    case EltwiseOp::Sigmoid:
      return {alg::eltwise_logistic_use_dst_for_bwd, 0.0f, true};
  }
  throw Error("unknown elementwise function");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Eltwise

struct EltwisePrims::Impl {
  EltwiseOp op;
  Algorithm algo;
  Layout layout;
  bool padded;
  dnnl::engine engine;
  dnnl::eltwise_forward::primitive_desc fwd_pd;  // on `layout`: the backward's hint
  // What forward() runs: fwd_pd, or (flat) the same function over the whole buffer as one
  // plain array, padding included.
  dnnl::eltwise_forward::primitive_desc run_pd;
  bool flat = false;
  dnnl::eltwise_forward fwd;
  // User memories, created once; only their data handles change per call.
  dnnl::memory src, dst;
  struct Backward {
    dnnl::eltwise_backward::primitive_desc pd;
    dnnl::eltwise_backward prim;
    dnnl::memory data, diff_dst, diff_src;  // data: src or dst (algo.uses_dst)
  };
  std::optional<Backward> bwd;

  Impl(const dnnl::engine& eng, EltwiseOp o, float alpha, const Layout& md)
      : op(o), algo(algorithm_of(o, alpha)), layout(md), padded(has_padding(md)), engine(eng) {
    // forward_training (not inference) so the backward descriptor can use this as a hint.
    const auto prop = dnnl::prop_kind::forward_training;
    fwd_pd = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(prop, algo.a, layout, algo.alpha, 0.0f), engine);
    // oneDNN 2.6's jit eltwise takes a padded layout only for functions with f(0) = 0 (it
    // computes on the padding); for sigmoid it falls back to its scalar reference loop
    // (ref:any). The function of each value does not depend on the layout, so run it on the
    // buffer as a flat array, padding included, and zero the padding after.
    flat = padded && op == EltwiseOp::Sigmoid;
    const Layout run_md =
        flat ? Layout({static_cast<dnnl::memory::dim>(md.get_size() / sizeof(float))}, dt::f32,
                      tag::a)
             : layout;
    run_pd = flat ? dnnl::eltwise_forward::primitive_desc(
                        dnnl::eltwise_forward::desc(prop, algo.a, run_md, algo.alpha, 0.0f), engine)
                  : fwd_pd;
    fwd = dnnl::eltwise_forward(run_pd);
    src = dnnl::memory(run_md, engine, DNNL_MEMORY_NONE);
    dst = dnnl::memory(run_md, engine, DNNL_MEMORY_NONE);
  }

  Backward& backward() {
    if (bwd) return *bwd;
    // diff_src and diff_dst in the layout of src and dst: no reorder on the way back either.
    const dnnl::eltwise_backward::desc d(algo.a, layout, layout, algo.alpha, 0.0f);
    const dnnl::eltwise_backward::primitive_desc pd(d, engine, fwd_pd);
    bwd.emplace(Backward{pd, dnnl::eltwise_backward(pd),
                         dnnl::memory(layout, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(layout, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(layout, engine, DNNL_MEMORY_NONE)});
    return *bwd;
  }

  std::string what() const { return std::string(op_name(op)) + " on " + dims_text(layout); }
};

EltwisePrims::EltwisePrims(const dnnl::engine& engine, EltwiseOp op, float alpha,
                           const Layout& layout) {
  VD_CHECK(layout.data_type() == dt::f32, ShapeError,
           std::string("The elementwise ") + op_name(op) + " runs on f32 data only.");
  try {
    impl_ = std::make_unique<Impl>(engine, op, alpha, layout);
  } catch (const dnnl::error& e) {
    throw Error(std::string("Could not create the oneDNN eltwise forward primitive (") +
                op_name(op) + " on " + dims_text(layout) + "): " + e.what());
  }
}

EltwisePrims::~EltwisePrims() = default;
EltwisePrims::EltwisePrims(EltwisePrims&&) noexcept = default;
EltwisePrims& EltwisePrims::operator=(EltwisePrims&&) noexcept = default;

const Layout& EltwisePrims::layout() const {
  return impl_->layout;
}

bool EltwisePrims::backward_uses_dst() const {
  return impl_->algo.uses_dst;
}

void EltwisePrims::forward(dnnl::stream& stream, const float* src, float* dst) {
  Impl& p = *impl_;
  try {
    p.src.set_data_handle(handle(src));
    p.dst.set_data_handle(dst);
    p.fwd.execute(stream, {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_DST, p.dst}});
    stream.wait();
    if (p.padded) zero_padding(p.layout, dst);
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN eltwise forward pass failed (" + p.what() + "): " + e.what());
  }
}

void EltwisePrims::backward(dnnl::stream& stream, const float* src, const float* dst,
                            const float* diff_dst, float* diff_src) {
  Impl& p = *impl_;
  try {
    Impl::Backward& b = p.backward();
    b.data.set_data_handle(handle(p.algo.uses_dst ? dst : src));
    b.diff_dst.set_data_handle(handle(diff_dst));
    b.diff_src.set_data_handle(diff_src);
    b.prim.execute(stream, {{p.algo.uses_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, b.data},
                            {DNNL_ARG_DIFF_DST, b.diff_dst},
                            {DNNL_ARG_DIFF_SRC, b.diff_src}});
    stream.wait();
    if (p.padded) zero_padding(p.layout, diff_src);
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN eltwise backward pass failed (" + p.what() + "): " + e.what());
  }
}

std::string EltwisePrims::impl_info() {
  try {
    Impl::Backward& b = impl_->backward();
    return std::string("forward=") + impl_->run_pd.impl_info_str() +
           (impl_->flat ? " (flat, padding included)" : "") + ", backward=" + b.pd.impl_info_str() +
           ", layout " + layout_text(impl_->layout);
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN eltwise backward primitive (" + impl_->what() +
                "): " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Resampling

struct ResamplingPrims::Impl {
  int factor;
  Layout src_layout;  // 4-D: a plain [N, C] is read as [N, C, 1, 1]
  bool src_padded, dst_padded;
  dnnl::engine engine;
  dnnl::resampling_forward::primitive_desc fwd_pd;
  dnnl::resampling_forward fwd;
  dnnl::memory src, dst;
  struct Backward {
    dnnl::resampling_backward::primitive_desc pd;
    dnnl::resampling_backward prim;
    dnnl::memory diff_dst, diff_src;
  };
  std::optional<Backward> bwd;

  Impl(const dnnl::engine& eng, const Layout& layout, int s) : factor(s), engine(eng) {
    src_layout = layout.dims().size() == 2
                     ? layout.reshape({layout.dims()[0], layout.dims()[1], 1, 1})
                     : layout;
    auto d = src_layout.dims();
    for (size_t i = 2; i < d.size(); ++i) d[i] *= s;
    // format_tag::any: oneDNN gives dst src's layout (blocked stays blocked, so the next
    // convolution reads it without a reorder).
    const Layout dst_any(d, dt::f32, tag::any);
    const dnnl::resampling_forward::desc desc(
        dnnl::prop_kind::forward_training, alg::resampling_nearest, factors(), src_layout, dst_any);
    fwd_pd = dnnl::resampling_forward::primitive_desc(desc, engine);
    fwd = dnnl::resampling_forward(fwd_pd);
    src = dnnl::memory(src_layout, engine, DNNL_MEMORY_NONE);
    dst = dnnl::memory(fwd_pd.dst_desc(), engine, DNNL_MEMORY_NONE);
    src_padded = has_padding(src_layout);
    dst_padded = has_padding(fwd_pd.dst_desc());
  }

  std::vector<float> factors() const {
    // One factor per spatial axis (1-D, 2-D or 3-D).
    return std::vector<float>(src_layout.dims().size() - 2, static_cast<float>(factor));
  }

  Backward& backward() {
    if (bwd) return *bwd;
    const dnnl::resampling_backward::desc desc(alg::resampling_nearest, factors(), src_layout,
                                               fwd_pd.dst_desc());
    const dnnl::resampling_backward::primitive_desc pd(desc, engine, fwd_pd);
    bwd.emplace(Backward{pd, dnnl::resampling_backward(pd),
                         dnnl::memory(fwd_pd.dst_desc(), engine, DNNL_MEMORY_NONE),
                         dnnl::memory(src_layout, engine, DNNL_MEMORY_NONE)});
    return *bwd;
  }

  std::string what() const {
    return "nearest up-sampling x" + std::to_string(factor) + " of " + dims_text(src_layout);
  }
};

ResamplingPrims::ResamplingPrims(const dnnl::engine& engine, const Layout& src_layout, int factor) {
  const size_t nd = src_layout.dims().size();
  VD_CHECK(factor >= 1 && (nd == 2 || (nd >= 3 && nd <= 5)) && src_layout.data_type() == dt::f32,
           ShapeError,
           "Nearest up-sampling needs a factor of at least 1 and f32 [N, C, L], [N, C, H, W], "
           "[N, C, D, H, W] (or [N, C]) data, got factor " +
               std::to_string(factor) + " on " + dims_text(src_layout) + ".");
  try {
    impl_ = std::make_unique<Impl>(engine, src_layout, factor);
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN resampling forward primitive (nearest x" +
                std::to_string(factor) + " of " + dims_text(src_layout) + "): " + e.what());
  }
}

ResamplingPrims::~ResamplingPrims() = default;
ResamplingPrims::ResamplingPrims(ResamplingPrims&&) noexcept = default;
ResamplingPrims& ResamplingPrims::operator=(ResamplingPrims&&) noexcept = default;

Layout ResamplingPrims::dst_layout() const {
  return impl_->fwd_pd.dst_desc();
}

void ResamplingPrims::forward(dnnl::stream& stream, const float* src, float* dst) {
  Impl& p = *impl_;
  try {
    p.src.set_data_handle(handle(src));
    p.dst.set_data_handle(dst);
    p.fwd.execute(stream, {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_DST, p.dst}});
    stream.wait();
    if (p.dst_padded) zero_padding(p.fwd_pd.dst_desc(), dst);
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN resampling forward pass failed (" + p.what() + "): " + e.what());
  }
}

void ResamplingPrims::backward(dnnl::stream& stream, const float* diff_dst, float* diff_src) {
  Impl& p = *impl_;
  try {
    Impl::Backward& b = p.backward();
    b.diff_dst.set_data_handle(handle(diff_dst));
    b.diff_src.set_data_handle(diff_src);
    b.prim.execute(stream, {{DNNL_ARG_DIFF_DST, b.diff_dst}, {DNNL_ARG_DIFF_SRC, b.diff_src}});
    stream.wait();
    if (p.src_padded) zero_padding(p.src_layout, diff_src);
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN resampling backward pass failed (" + p.what() + "): " + e.what());
  }
}

std::string ResamplingPrims::impl_info() {
  try {
    Impl::Backward& b = impl_->backward();
    return std::string("forward=") + impl_->fwd_pd.impl_info_str() +
           ", backward=" + b.pd.impl_info_str() + ", src " + layout_text(impl_->src_layout) +
           " -> dst " + layout_text(impl_->fwd_pd.dst_desc());
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN resampling backward primitive (" + impl_->what() +
                "): " + e.what());
  }
}

}  // namespace vd
