// vd::AttentionPrims: every oneDNN descriptor of the attention layer (oneDNN v2 API: op desc ->
// primitive_desc -> primitive): matmuls whose transposes are strides, softmax over the keys,
// ones x diff_y for the bias gradients, and the reorders between the work layout and tokens.
#include "nn/dnnl_attention.hpp"

#include <cmath>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "nn/dnnl_prims.hpp"

namespace vd {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims = dnnl::memory::dims;

// oneDNN only reads inputs; its memory handles are untyped void*.
void* handle(const float* p) {
  return const_cast<float*>(p);
}

Layout dense(const dims& d, tag t) {
  return dnnl::memory::desc(d, dt::f32, t);
}

Layout strided(const dims& d, const dims& strides) {
  return dnnl::memory::desc(d, dt::f32, strides);
}

std::string shape_text(const AttentionShape& s) {
  return "attention, batch " + std::to_string(s.batch) + ", " + std::to_string(s.channels) +
         " channels, " + std::to_string(s.height) + "x" + std::to_string(s.width) + " map";
}

// dst = scale * (src x weights) [+ bias] [+ dst]: one oneDNN matmul whose memories wrap the
// caller's pointers, set per call. Transposed operands are plain memory described by strides.
struct Matmul {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  dnnl::memory src, weights, bias, dst;
  bool has_bias = false;

  Matmul(const dnnl::engine& engine, const Layout& src_md, const Layout& weights_md,
         const std::optional<Layout>& bias_md, const Layout& dst_md, float scale = 1.0f,
         bool accumulate = false) {
    dnnl::primitive_attr attr;
    if (scale != 1.0f) attr.set_output_scales(0, {scale});
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    has_bias = bias_md.has_value();
    const dnnl::matmul::desc desc = has_bias
                                        ? dnnl::matmul::desc(src_md, weights_md, *bias_md, dst_md)
                                        : dnnl::matmul::desc(src_md, weights_md, dst_md);
    pd = dnnl::matmul::primitive_desc(desc, attr, engine);
    prim = dnnl::matmul(pd);
    src = dnnl::memory(src_md, engine, DNNL_MEMORY_NONE);
    weights = dnnl::memory(weights_md, engine, DNNL_MEMORY_NONE);
    if (has_bias) bias = dnnl::memory(*bias_md, engine, DNNL_MEMORY_NONE);
    dst = dnnl::memory(dst_md, engine, DNNL_MEMORY_NONE);
  }

  void run(dnnl::stream& stream, const float* s, const float* w, const float* b, float* d) {
    src.set_data_handle(handle(s));
    weights.set_data_handle(handle(w));
    dst.set_data_handle(d);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (has_bias) {
      bias.set_data_handle(handle(b));
      args.emplace(DNNL_ARG_BIAS, bias);
    }
    prim.execute(stream, args);
    stream.wait();
  }
};

// A reorder between two descriptors, memories wrapping the caller's pointers.
struct Copy {
  dnnl::reorder prim;
  dnnl::memory from, to;
  Copy(const dnnl::engine& engine, const Layout& from_md, const Layout& to_md)
      : from(from_md, engine, DNNL_MEMORY_NONE), to(to_md, engine, DNNL_MEMORY_NONE) {
    prim = dnnl::reorder(from, to);
  }
  void run(dnnl::stream& stream, const float* src, float* dst) {
    from.set_data_handle(handle(src));
    to.set_data_handle(dst);
    prim.execute(stream, from, to);
    stream.wait();
  }
};

// The work layout (ncw/nchw/ncdhw or its 8- or 16-channel blocking, of any spatial rank) as the
// 4-D [N, C, H, W] of the shape: the same memory, since S = H*W positions lie in one run.
Layout work_as_4d(const Layout& work, const AttentionShape& sh) {
  const dims d{sh.batch, sh.channels, sh.height, sh.width};
  switch (channel_block_of(work)) {
    case 1:
      return dense(d, tag::nchw);
    case 8:
      return dense(d, tag::nChw8c);
    case 16:
      return dense(d, tag::nChw16c);
    default:
      throw ShapeError(
          "The attention's work layout must be plain or blocked by 8 or 16 channels, "
          "dense (" +
          shape_text(sh) + ")");
  }
}

}  // namespace

struct AttentionPrims::Impl {
  AttentionShape s;
  dnnl::engine engine;
  float scale;  // 1 / sqrt(C): diffusers' dim_head ** -0.5 with one head of C channels

  // Forward. Descriptors, with M = N*S token rows:
  //   tokens [N, C, H, W] as nhwc == [M, C] row-major
  //   project: t [M, C] x W^T (W [C, C] row-major read as [in, out] with strides) + b [1, C]
  //   qk:      q [N, S, C] x k^T (k [N, S, C] read as [N, C, S]) -> [N, S, S], scaled
  //   av:      a [N, S, S] x v [N, S, C] -> [N, S, C]
  Copy to_tok, from_tok;
  Matmul project, qk, av;
  dnnl::softmax_forward::primitive_desc softmax_pd;
  dnnl::softmax_forward softmax;
  dnnl::memory scores_mem;  // [N, S, S], softmax in place

  struct Backward {
    //   weights: diff_y^T (diff_y [M, C] read as [C, M]) x t [M, C] -> diff_W [C, C]
    //   data:    diff_y [M, C] x W [C, C] -> diff_t [M, C] (data_add adds into diff_t)
    //   bias:    ones [1, M] x diff_y [M, C] -> [1, C], the sum over the rows (oneDNN 2.6's
    //            reduction ran its reference code here: 1.8 ms against 0.01 for this matmul)
    //   ctx_a:   diff_ctx [N, S, C] x v^T -> diff_a [N, S, S]
    //   ctx_v:   a^T (a read as [N, S(key), S(query)]) x diff_ctx -> diff_v [N, S, C]
    //   sc_q:    diff_s [N, S, S] x k -> diff_q, scaled
    //   sc_k:    diff_s^T x q -> diff_k, scaled
    Matmul weights, data, data_add, ctx_a, ctx_v, sc_q, sc_k, bias;
    std::vector<float> ones;  // [M]
    dnnl::softmax_backward::primitive_desc softmax_pd;
    dnnl::softmax_backward softmax;
    dnnl::memory softmax_dst, softmax_diff;  // [N, S, S]; diff in place
  };
  std::optional<Backward> bwd;

  int64_t N() const { return s.batch; }
  int64_t C() const { return s.channels; }
  int64_t S() const { return s.tokens(); }
  int64_t M() const { return N() * S(); }

  Layout rows() const { return dense({M(), C()}, tag::ab); }         // [M, C]
  Layout rows_t() const { return strided({C(), M()}, {1, C()}); }    // [M, C] as [C, M]
  Layout square() const { return dense({C(), C()}, tag::ab); }       // W [out, in]
  Layout square_t() const { return strided({C(), C()}, {1, C()}); }  // W as [in, out]
  Layout bias_row() const { return dense({1, C()}, tag::ab); }       // [1, C]
  Layout seq() const { return dense({N(), S(), C()}, tag::abc); }    // [N, S, C]
  Layout seq_t() const { return strided({N(), C(), S()}, {S() * C(), 1, C()}); }    // as [N, C, S]
  Layout probs() const { return dense({N(), S(), S()}, tag::abc); }                 // [N, S, S]
  Layout probs_t() const { return strided({N(), S(), S()}, {S() * S(), 1, S()}); }  // transposed

  Impl(const dnnl::engine& eng, const AttentionShape& sh, const Layout& work)
      : s(sh),
        engine(eng),
        scale(static_cast<float>(1.0 / std::sqrt(static_cast<double>(sh.channels)))),
        to_tok(eng, work_as_4d(work, sh),
               dense({sh.batch, sh.channels, sh.height, sh.width}, tag::nhwc)),
        from_tok(eng, dense({sh.batch, sh.channels, sh.height, sh.width}, tag::nhwc),
                 work_as_4d(work, sh)),
        project(eng, rows(), square_t(), bias_row(), rows()),
        qk(eng, seq(), seq_t(), std::nullopt, probs(), scale),
        av(eng, probs(), seq(), std::nullopt, seq()) {
    // forward_training so the backward descriptor can take it as its hint.
    const dnnl::softmax_forward::desc sd(dnnl::prop_kind::forward_training, probs(), 2);
    softmax_pd = dnnl::softmax_forward::primitive_desc(sd, engine);
    softmax = dnnl::softmax_forward(softmax_pd);
    scores_mem = dnnl::memory(probs(), engine, DNNL_MEMORY_NONE);
  }

  Backward& backward() {
    if (bwd) return *bwd;
    const dnnl::softmax_backward::desc sd(probs(), probs(), 2);
    const dnnl::softmax_backward::primitive_desc spd(sd, engine, softmax_pd);
    bwd.emplace(Backward{Matmul(engine, rows_t(), rows(), std::nullopt, square()),
                         Matmul(engine, rows(), square(), std::nullopt, rows()),
                         Matmul(engine, rows(), square(), std::nullopt, rows(), 1.0f, true),
                         Matmul(engine, seq(), seq_t(), std::nullopt, probs()),
                         Matmul(engine, probs_t(), seq(), std::nullopt, seq()),
                         Matmul(engine, probs(), seq(), std::nullopt, seq(), scale),
                         Matmul(engine, probs_t(), seq(), std::nullopt, seq(), scale),
                         Matmul(engine, dense({1, M()}, tag::ab), rows(), std::nullopt, bias_row()),
                         std::vector<float>(static_cast<size_t>(M()), 1.0f), spd,
                         dnnl::softmax_backward(spd),
                         dnnl::memory(probs(), engine, DNNL_MEMORY_NONE),
                         dnnl::memory(probs(), engine, DNNL_MEMORY_NONE)});
    return *bwd;
  }

  // Runs f, turning a oneDNN failure into vd::Error naming the step.
  template <class F>
  void guard(const char* step, F&& f) {
    try {
      f();
    } catch (const dnnl::error& e) {
      throw Error("The oneDNN " + shape_text(s) + " " + step + " failed: " + e.what());
    }
  }
};

AttentionPrims::AttentionPrims(const dnnl::engine& engine, const AttentionShape& shape,
                               const Layout& work) {
  VD_CHECK(shape.batch > 0 && shape.channels > 0 && shape.height > 0 && shape.width > 0, ShapeError,
           "An attention layer needs positive sizes, got " + shape_text(shape) + ".");
  try {
    impl_ = std::make_unique<Impl>(engine, shape, work);
  } catch (const dnnl::error& e) {
    throw Error("Could not create the oneDNN primitives of the " + shape_text(shape) + ": " +
                e.what());
  }
}

AttentionPrims::~AttentionPrims() = default;
AttentionPrims::AttentionPrims(AttentionPrims&&) noexcept = default;
AttentionPrims& AttentionPrims::operator=(AttentionPrims&&) noexcept = default;

const AttentionShape& AttentionPrims::shape() const {
  return impl_->s;
}

void AttentionPrims::to_tokens(dnnl::stream& stream, const float* work, float* tokens) {
  impl_->guard("reorder to tokens", [&] { impl_->to_tok.run(stream, work, tokens); });
}

void AttentionPrims::from_tokens(dnnl::stream& stream, const float* tokens, float* work) {
  impl_->guard("reorder from tokens", [&] { impl_->from_tok.run(stream, tokens, work); });
}

void AttentionPrims::project(dnnl::stream& stream, const float* t, const float* weights,
                             const float* bias, float* y) {
  impl_->guard("projection", [&] { impl_->project.run(stream, t, weights, bias, y); });
}

void AttentionPrims::project_backward_weights(dnnl::stream& stream, const float* t,
                                              const float* diff_y, float* diff_weights,
                                              float* diff_bias) {
  Impl& p = *impl_;
  p.guard("projection weights gradient", [&] {
    Impl::Backward& b = p.backward();
    b.weights.run(stream, diff_y, t, nullptr, diff_weights);
    b.bias.run(stream, b.ones.data(), diff_y, nullptr, diff_bias);
  });
}

void AttentionPrims::project_backward_data(dnnl::stream& stream, const float* diff_y,
                                           const float* weights, float* diff_t, bool accumulate) {
  Impl& p = *impl_;
  p.guard("projection data gradient", [&] {
    Impl::Backward& b = p.backward();
    (accumulate ? b.data_add : b.data).run(stream, diff_y, weights, nullptr, diff_t);
  });
}

void AttentionPrims::scores(dnnl::stream& stream, const float* q, const float* k, float* a) {
  Impl& p = *impl_;
  p.guard("scores", [&] {
    p.qk.run(stream, q, k, nullptr, a);
    p.scores_mem.set_data_handle(a);
    p.softmax.execute(stream, {{DNNL_ARG_SRC, p.scores_mem}, {DNNL_ARG_DST, p.scores_mem}});
    stream.wait();
  });
}

void AttentionPrims::context(dnnl::stream& stream, const float* a, const float* v, float* ctx) {
  impl_->guard("context", [&] { impl_->av.run(stream, a, v, nullptr, ctx); });
}

void AttentionPrims::context_backward(dnnl::stream& stream, const float* a, const float* v,
                                      const float* diff_ctx, float* diff_a, float* diff_v) {
  Impl& p = *impl_;
  p.guard("context gradient", [&] {
    Impl::Backward& b = p.backward();
    b.ctx_a.run(stream, diff_ctx, v, nullptr, diff_a);
    b.ctx_v.run(stream, a, diff_ctx, nullptr, diff_v);
  });
}

void AttentionPrims::scores_backward(dnnl::stream& stream, const float* q, const float* k,
                                     const float* a, float* diff_a, float* diff_q, float* diff_k) {
  Impl& p = *impl_;
  p.guard("scores gradient", [&] {
    Impl::Backward& b = p.backward();
    b.softmax_dst.set_data_handle(handle(a));
    b.softmax_diff.set_data_handle(diff_a);
    b.softmax.execute(stream, {{DNNL_ARG_DST, b.softmax_dst},
                               {DNNL_ARG_DIFF_DST, b.softmax_diff},
                               {DNNL_ARG_DIFF_SRC, b.softmax_diff}});
    stream.wait();
    b.sc_q.run(stream, diff_a, k, nullptr, diff_q);
    b.sc_k.run(stream, diff_a, q, nullptr, diff_k);
  });
}

std::string AttentionPrims::impl_info() {
  Impl& p = *impl_;
  std::string info;
  p.guard("backward primitive creation", [&] {
    Impl::Backward& b = p.backward();
    info = std::string("project=") + p.project.pd.impl_info_str() +
           ", scores=" + p.qk.pd.impl_info_str() + ", softmax=" + p.softmax_pd.impl_info_str() +
           ", context=" + p.av.pd.impl_info_str() +
           ", project_backward_weights=" + b.weights.pd.impl_info_str() +
           ", project_backward_data=" + b.data.pd.impl_info_str() +
           ", bias_sum=" + b.bias.pd.impl_info_str() +
           ", context_backward=" + b.ctx_a.pd.impl_info_str() + "/" + b.ctx_v.pd.impl_info_str() +
           ", softmax_backward=" + b.softmax_pd.impl_info_str() +
           ", scores_backward=" + b.sc_q.pd.impl_info_str() + "/" + b.sc_k.pd.impl_info_str();
  });
  return info;
}

}  // namespace vd
