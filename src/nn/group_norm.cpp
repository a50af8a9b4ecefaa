// vd::GroupNorm: parameters, the layout choice per batch size, and the "gn" layer kind.
#include "nn/group_norm.hpp"

#include <sstream>

#include "core/error.hpp"
#include "nn/registry.hpp"

namespace vd {

GroupNorm::GroupNorm(ParamStore& store, std::string name, Shape in, int groups, float eps)
    : Layer(std::move(name), in, in), store_(store), groups_(groups), eps_(eps) {
  VD_CHECK(groups > 0 && in.c % groups == 0, ShapeError,
           "gn layer " + this->name() + ": " + std::to_string(groups) +
               " groups do not divide its " + std::to_string(in.c) +
               " channels; use a number of groups that divides " + std::to_string(in.c));
  VD_CHECK(eps > 0, ShapeError, "gn layer " + this->name() + " needs a positive eps");
  weight_ = store_.add(this->name() + ".weight", {in.c});
  bias_ = store_.add(this->name() + ".bias", {in.c});
}

void GroupNorm::init(Rng& /*rng*/) {
  std::fill_n(store_.param(weight_), in_shape().c, 1.0f);
  std::fill_n(store_.param(bias_), in_shape().c, 0.0f);
}

std::string GroupNorm::describe() const {
  std::ostringstream s;
  s << "gn " << groups_;
  if (eps_ != kDefaultEps) s << " " << eps_;
  return s.str();
}

GroupNorm::PerBatch& GroupNorm::batch(int n) {
  auto it = batches_.find(n);
  VD_CHECK(it != batches_.end(), Error,
           "gn layer " + name() + " runs batch size " + std::to_string(n) +
               " without prepare(); run it inside a Graph");
  return it->second;
}

Layout GroupNorm::prepare(Context& ctx, int n, const Layout& src) {
  const Shape& s = in_shape();
  PerBatch b;
  int block = channel_block_of(src);
  Layout dst = src;
  if (s.flat()) block = 1;  // [N, C]: plain 2-D, S = 1
  if (block == 0) {
    // Neither plain nor channel-blocked (e.g. nhwc): normalise a plain copy.
    dst = plain_layout(n, s);
    b.to_plain = std::make_unique<ReorderPrims>(ctx.engine, src, dst);
    b.from_plain = std::make_unique<ReorderPrims>(ctx.engine, dst, src);
    b.plain_src.resize(layout_floats(dst));
    b.plain_diff.resize(layout_floats(dst));
    block = 1;
  }
  b.dims = GroupNormDims{n, s.c, s.spatial_size(), groups_, block};
  check_group_norm_dims(b.dims);
  b.mean.resize(static_cast<size_t>(n) * groups_);
  b.rstd.resize(b.mean.size());
  batches_[n] = std::move(b);
  return dst;
}

void GroupNorm::forward(Context& ctx, int n, const float* src, float* dst) {
  PerBatch& b = batch(n);
  if (b.to_plain) {
    b.to_plain->run(ctx.stream, src, b.plain_src.data());
    src = b.plain_src.data();
  }
  group_norm_forward(b.dims, eps_, src, store_.param(weight_), store_.param(bias_), dst,
                     b.mean.data(), b.rstd.data());
}

void GroupNorm::backward(Context& ctx, int n, const float* src, const float* /*dst*/,
                         float* diff_dst, float* diff_src) {
  PerBatch& b = batch(n);
  // The plain copy of src is still the forward's (backward follows its own forward).
  const float* x = b.to_plain ? b.plain_src.data() : src;
  float* dx = b.from_plain && diff_src ? b.plain_diff.data() : diff_src;
  group_norm_backward(b.dims, x, b.mean.data(), b.rstd.data(), store_.param(weight_), diff_dst, dx,
                      store_.grad(weight_), store_.grad(bias_));
  if (dx && dx != diff_src) b.from_plain->run(ctx.stream, dx, diff_src);
}

LayerKind gn_kind() {
  LayerKind k;
  k.keyword = "gn";
  k.syntax = "gn G [EPS]";
  k.what = "GroupNorm over G groups of channels, eps EPS (1e-6, as diffusers' VAE)";
  k.torch = "nn.GroupNorm(G, C, eps)";
  k.params = true;
  struct Spec {
    int groups = 0;
    float eps = GroupNorm::kDefaultEps;
  };
  const auto spec = [](const LayerText& l) {
    Spec s;
    if (l.has_body || l.args.empty() || l.args.size() > 2 || !parse_int(l.args[0], s.groups) ||
        s.groups < 1)
      throw SyntaxError(
          "'gn' takes a number of groups and an optional eps, e.g. 'gn 32' or "
          "'gn 32 1e-5'");
    if (l.args.size() == 2) {
      std::istringstream in(l.args[1]);
      if (!(in >> s.eps) || !in.eof() || !(s.eps > 0))
        throw SyntaxError("'gn': the eps '" + l.args[1] + "' is not a positive number");
    }
    return s;
  };
  k.check = [spec](const LayerText& l) { spec(l); };
  k.build = [spec](const BuildSite& site, const LayerText& l) -> std::unique_ptr<Layer> {
    const Spec s = spec(l);
    return std::make_unique<GroupNorm>(site.store, site.name, site.in, s.groups, s.eps);
  };
  return k;
}

}  // namespace vd
