// vd::InnerProductPrims: every oneDNN descriptor and primitive descriptor of the project is
// created here (oneDNN v2 API: op desc -> primitive_desc -> primitive).
#include "nn/dnnl_prims.hpp"

#include <optional>
#include <string>

#include "core/error.hpp"

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

struct InnerProductPrims::Impl {
  InnerProductShape shape;
  dnnl::engine engine;
  dnnl::inner_product_forward::primitive_desc fwd_pd;
  dnnl::inner_product_forward fwd;
  // User memories, created once; only their data handles change per call (a few ns).
  dnnl::memory src, weights, bias, dst;  // [B, I], [O, I], [O], [B, O]

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
    // forward_training (not inference) so the backward descriptors can use this as a hint.
    dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_training, src_md, weights_md,
                                           bias_md, dst_md);
    dnnl::primitive_attr attr;
    if (s.relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    fwd_pd = dnnl::inner_product_forward::primitive_desc(desc, attr, engine);
    fwd = dnnl::inner_product_forward(fwd_pd);
    src = dnnl::memory(src_md, engine, DNNL_MEMORY_NONE);
    weights = dnnl::memory(weights_md, engine, DNNL_MEMORY_NONE);
    bias = dnnl::memory(bias_md, engine, DNNL_MEMORY_NONE);
    dst = dnnl::memory(dst_md, engine, DNNL_MEMORY_NONE);
  }

  Backward& backward() {
    if (bwd) return *bwd;
    const auto src_md = fwd_pd.src_desc();
    const auto weights_md = fwd_pd.weights_desc();
    const auto bias_md = fwd_pd.bias_desc();
    const auto dst_md = fwd_pd.dst_desc();
    dnnl::inner_product_backward_data::desc data_desc(src_md, weights_md, dst_md);
    dnnl::inner_product_backward_data::primitive_desc data_pd(data_desc, engine, fwd_pd);
    dnnl::inner_product_backward_weights::desc weights_desc(src_md, weights_md, bias_md, dst_md);
    dnnl::inner_product_backward_weights::primitive_desc weights_pd(weights_desc, engine, fwd_pd);
    bwd.emplace(Backward{data_pd, dnnl::inner_product_backward_data(data_pd), weights_pd,
                         dnnl::inner_product_backward_weights(weights_pd),
                         dnnl::memory(src_md, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(dst_md, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(weights_md, engine, DNNL_MEMORY_NONE),
                         dnnl::memory(bias_md, engine, DNNL_MEMORY_NONE)});
    return *bwd;
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
    p.fwd.execute(stream, {{DNNL_ARG_SRC, p.src},
                           {DNNL_ARG_WEIGHTS, p.weights},
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
  try {
    Impl::Backward& b = impl_->backward();
    impl_->src.set_data_handle(handle(src));
    b.diff_dst.set_data_handle(handle(diff_dst));
    b.diff_weights.set_data_handle(diff_weights);
    b.diff_bias.set_data_handle(diff_bias);
    b.weights.execute(stream, {{DNNL_ARG_SRC, impl_->src},
                               {DNNL_ARG_DIFF_DST, b.diff_dst},
                               {DNNL_ARG_DIFF_WEIGHTS, b.diff_weights},
                               {DNNL_ARG_DIFF_BIAS, b.diff_bias}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN inner product weights gradient failed (" + shape_text(impl_->shape) +
                "): " + e.what());
  }
}

void InnerProductPrims::backward_data(dnnl::stream& stream, const float* diff_dst,
                                      const float* weights, float* diff_src) {
  try {
    Impl::Backward& b = impl_->backward();
    b.diff_dst.set_data_handle(handle(diff_dst));
    impl_->weights.set_data_handle(handle(weights));
    b.diff_src.set_data_handle(diff_src);
    b.data.execute(stream, {{DNNL_ARG_DIFF_DST, b.diff_dst},
                            {DNNL_ARG_WEIGHTS, impl_->weights},
                            {DNNL_ARG_DIFF_SRC, b.diff_src}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("The oneDNN inner product data gradient failed (" + shape_text(impl_->shape) +
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

}  // namespace vd
