// vd::Eltwise: an activation on oneDNN's eltwise primitives in its src's layout, and the layer
// kinds "silu", "gelu", "leakyrelu A", "tanh" and "sigmoid".
#include "nn/activation.hpp"

#include <charconv>
#include <cmath>

#include "core/error.hpp"
#include "nn/registry.hpp"

namespace vd {

std::string float_text(float v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

Eltwise::Eltwise(std::string name, Shape in, EltwiseOp op, float alpha)
    : Layer(std::move(name), in, in), op_(op), alpha_(op == EltwiseOp::LeakyRelu ? alpha : 0.0f) {
  VD_CHECK(std::isfinite(alpha_), ShapeError,
           "leakyrelu layer " + this->name() + " needs a finite slope, got " + float_text(alpha));
}

std::string Eltwise::describe() const {
  switch (op_) {
    case EltwiseOp::Silu:
      return "silu";
    case EltwiseOp::Gelu:
      return "gelu";
    case EltwiseOp::LeakyRelu:
      return "leakyrelu " + float_text(alpha_);
    case EltwiseOp::Tanh:
      return "tanh";
    case EltwiseOp::Sigmoid:
      return "sigmoid";
  }
  return "?";
}

EltwisePrims& Eltwise::prims(int n) {
  auto it = cache_.find(n);
  VD_CHECK(it != cache_.end(), Error,
           describe() + " layer " + name() + " runs batch size " + std::to_string(n) +
               " without prepare(); run it inside a Graph");
  return *it->second;
}

Layout Eltwise::prepare(Context& ctx, int n, const Layout& src) {
  auto it = cache_.find(n);
  if (it == cache_.end() || it->second->layout() != src)
    cache_[n] = std::make_unique<EltwisePrims>(ctx.engine, op_, alpha_, src);
  return src;
}

void Eltwise::forward(Context& ctx, int n, const float* src, float* dst) {
  prims(n).forward(ctx.stream, src, dst);
}

void Eltwise::backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                       float* diff_src) {
  if (diff_src) prims(n).backward(ctx.stream, src, dst, diff_dst, diff_src);
}

std::string Eltwise::impl_info(int n) {
  return prims(n).impl_info();
}

// ---------------------------------------------------------------------------------------------
// The kinds.

namespace {

// A kind without words: the function and what it is, one per keyword.
LayerKind plain_kind(const std::string& keyword, EltwiseOp op, const std::string& what,
                     const std::string& torch) {
  LayerKind k;
  k.keyword = keyword;
  k.syntax = keyword;
  k.what = what;
  k.torch = torch;
  // Not fused into the layer before it (Activation::None): the fused backward of fc/conv
  // knows ReLU only.
  k.check = [keyword](const LayerText& l) {
    if (!l.args.empty() || l.has_body)
      throw SyntaxError("'" + keyword + "' takes no arguments; write '" + keyword + "'");
  };
  k.build = [op](const BuildSite& s, const LayerText&) -> std::unique_ptr<Layer> {
    return std::make_unique<Eltwise>(s.name, s.in, op);
  };
  return k;
}

}  // namespace

LayerKind silu_kind() {
  return plain_kind("silu", EltwiseOp::Silu, "x * sigmoid(x) (swish)", "nn.SiLU");
}

LayerKind gelu_kind() {
  LayerKind k = plain_kind("gelu", EltwiseOp::Gelu, "x * Phi(x), the exact (erf) form", "nn.GELU");
  const auto words = k.check;
  k.check = [words](const LayerText& l) {
    if (l.args.size() == 1 && l.args[0] == "tanh" && !l.has_body)
      throw SyntaxError(
          "'gelu' is the exact erf form (PyTorch's default nn.GELU()); the tanh approximation "
          "is not offered: write 'gelu'");
    words(l);
  };
  return k;
}

LayerKind leakyrelu_kind() {
  LayerKind k;
  k.keyword = "leakyrelu";
  k.syntax = "leakyrelu A";
  k.what = "x > 0 ? x : A * x, slope A (e.g. 0.2)";
  k.torch = "nn.LeakyReLU(A)";
  const auto slope = [](const LayerText& l) {
    if (l.has_body || l.args.size() != 1)
      throw SyntaxError("'leakyrelu' takes one slope, e.g. 'leakyrelu 0.2'");
    const std::string& w = l.args[0];
    float a = 0;
    const auto res = std::from_chars(w.data(), w.data() + w.size(), a);
    if (res.ec != std::errc() || res.ptr != w.data() + w.size() || !std::isfinite(a))
      throw SyntaxError("'leakyrelu' takes one slope, a number; '" + w +
                        "' is not one: write e.g. 'leakyrelu 0.2'");
    return a;
  };
  k.check = [slope](const LayerText& l) { slope(l); };
  k.build = [slope](const BuildSite& s, const LayerText& l) -> std::unique_ptr<Layer> {
    return std::make_unique<Eltwise>(s.name, s.in, EltwiseOp::LeakyRelu, slope(l));
  };
  return k;
}

LayerKind tanh_kind() {
  return plain_kind("tanh", EltwiseOp::Tanh, "tanh(x)", "nn.Tanh");
}

LayerKind sigmoid_kind() {
  return plain_kind("sigmoid", EltwiseOp::Sigmoid,
                    "1 / (1 + exp(-x)) (not for a Bernoulli decoder's output: its loss takes "
                    "logits)",
                    "nn.Sigmoid");
}

}  // namespace vd
