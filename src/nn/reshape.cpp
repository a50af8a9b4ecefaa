// vd::Reshape: shapes, the view of plain input, the reorders after a blocked layer, and the
// "flatten" and "reshape" layer kinds.
#include "nn/reshape.hpp"

#include "core/error.hpp"
#include "nn/registry.hpp"

namespace vd {

Reshape::Reshape(std::string name, Shape in, Shape out) : Layer(std::move(name), in, out) {
  VD_CHECK(in.size() == out.size(), ShapeError,
           "reshape layer " + this->name() + " cannot turn " + in.text() + " (" +
               std::to_string(in.size()) + " values) into " + out.text() + " (" +
               std::to_string(out.size()) + " values)");
}

std::string Reshape::describe() const {
  return out_shape().flat() ? "flatten" : "reshape " + out_shape().text();
}

Layout Reshape::prepare(Context& ctx, int n, const Layout& src) {
  if (!is_plain(src, n, in_shape()) && !blocked_.count(n)) {
    const Layout plain = plain_layout(n, in_shape());
    blocked_[n] = Reorders{std::make_unique<ReorderPrims>(ctx.engine, src, plain),
                           std::make_unique<ReorderPrims>(ctx.engine, plain, src)};
  }
  return plain_layout(n, out_shape());
}

bool Reshape::is_view(int n) const {
  return !blocked_.count(n);
}

void Reshape::forward(Context& ctx, int n, const float* src, float* dst) {
  blocked_.at(n).to_plain->run(ctx.stream, src, dst);
}

void Reshape::backward(Context& ctx, int n, const float* /*src*/, const float* /*dst*/,
                       float* diff_dst, float* diff_src) {
  if (diff_src) blocked_.at(n).from_plain->run(ctx.stream, diff_dst, diff_src);
}

std::unique_ptr<Layer> make_flatten(const std::string& name, const Shape& in) {
  return std::make_unique<Reshape>(name, in, Shape{static_cast<int>(in.size()), 1, 1});
}

LayerKind flatten_kind() {
  LayerKind k;
  k.keyword = "flatten";
  k.syntax = "flatten";
  k.what = "C x H x W -> C*H*W (inserted before an fc on image input)";
  k.torch = "nn.Flatten";
  k.check = expect_no_args;
  k.build = [](const BuildSite& s, const LayerText&) { return make_flatten(s.name, s.in); };
  return k;
}

LayerKind reshape_kind() {
  LayerKind k;
  k.keyword = "reshape";
  k.syntax = "reshape CxHxW";
  k.what = "a flat vector -> C x H x W (CxL: 1-D, CxDxHxW: 3-D)";
  k.torch = "nn.Unflatten(1, (C, H, W))";
  const auto shape = [](const LayerText& l) {
    Shape s;
    if (l.has_body || l.args.size() != 1 || !parse_shape(l.args[0], s))
      throw SyntaxError("'reshape' takes a shape of positive sizes: CxHxW (e.g. 64x7x7), CxL "
                        "(1-D, e.g. 64x32) or CxDxHxW (3-D, e.g. 32x4x4x4)");
    return s;
  };
  k.check = [shape](const LayerText& l) { shape(l); };
  k.build = [shape](const BuildSite& s, const LayerText& l) -> std::unique_ptr<Layer> {
    return std::make_unique<Reshape>(s.name, s.in, shape(l));
  };
  return k;
}

}  // namespace vd
