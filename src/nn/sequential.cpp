// vd::Sequential: planning of layouts per batch size, buffers, and the forward and reverse walks.
#include "nn/sequential.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "nn/dnnl_prims.hpp"

namespace vd {

void Sequential::add(std::unique_ptr<Layer> layer) {
  VD_CHECK(layer, ShapeError, "Sequential::add got no layer.");
  const Shape expect = out_shape();
  VD_CHECK(layer->in_shape() == expect || (layer->in_shape().size() == expect.size() &&
                                           layer->in_shape().flat() && expect.flat()),
           ShapeError,
           "layer " + layer->name() + " (" + layer->describe() + ") expects input " +
               layer->in_shape().text() + " but the layer before it gives " + expect.text());
  layers_.push_back(std::move(layer));
  act_.resize(layers_.size());
  plans_.clear();
}

void Sequential::init(Rng& rng) {
  for (auto& l : layers_) l->init(rng);
}

double Sequential::flops_per_sample() const {
  double f = 0;
  for (const auto& l : layers_) f += l->flops_per_sample();
  return f;
}

Sequential::Plan& Sequential::plan(Context& ctx, int n) {
  auto it = plans_.find(n);
  if (it != plans_.end()) return it->second;
  VD_CHECK(n > 0, ShapeError, "a batch needs at least one sample, got " + std::to_string(n));
  Plan p;
  p.layouts.push_back(plain_layout(n, in_));
  size_t widest = layout_floats(p.layouts[0]);
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    p.layouts.push_back(l.prepare(ctx, n, p.layouts[i]));
    p.view.push_back(l.is_view(n) ? 1 : 0);
    const size_t floats = layout_floats(p.layouts[i + 1]);
    widest = std::max(widest, floats);
    if (!p.view.back() && act_[i].size() < floats) act_[i].resize(floats);
  }
  if (diff_a_.size() < widest) {
    diff_a_.resize(widest);
    diff_b_.resize(widest);
  }
  p.plain_out = is_plain(p.layouts.back(), n, out_shape());
  if (!p.plain_out) {
    const Layout plain = plain_layout(n, out_shape());
    to_plain_[n] = std::make_unique<ReorderPrims>(ctx.engine, p.layouts.back(), plain);
    from_plain_[n] = std::make_unique<ReorderPrims>(ctx.engine, plain, p.layouts.back());
    out_plain_.resize(std::max(out_plain_.size(), layout_floats(plain)));
  }
  return plans_.emplace(n, std::move(p)).first->second;
}

// The memory layer i reads: the data, or the nearest earlier non-view layer's dst.
const float* Sequential::src_of(const Plan& p, size_t i, const float* x) const {
  while (i > 0 && p.view[i - 1]) --i;
  return i == 0 ? x : act_[i - 1].data();
}

const float* Sequential::forward(Context& ctx, int n, const float* x) {
  Plan& p = plan(ctx, n);
  for (size_t i = 0; i < layers_.size(); ++i)
    if (!p.view[i]) layers_[i]->forward(ctx, n, src_of(p, i, x), act_[i].data());
  const float* out = src_of(p, layers_.size(), x);
  if (p.plain_out) return out;
  to_plain_.at(n)->run(ctx.stream, out, out_plain_.data());
  return out_plain_.data();
}

void Sequential::backward(Context& ctx, int n, const float* x, float* diff_out, float* diff_x) {
  Plan& p = plan(ctx, n);
  float* diff = diff_out;
  if (!p.plain_out) {
    from_plain_.at(n)->run(ctx.stream, diff_out, diff_a_.data());
    diff = diff_a_.data();
  }
  size_t first = 0;  // the first layer that is not a view
  while (first < layers_.size() && p.view[first]) ++first;
  for (size_t i = layers_.size(); i-- > first;) {
    if (p.view[i]) continue;  // a view passes the gradient through unchanged
    float* target =
        i == first ? diff_x : (diff == diff_a_.data() ? diff_b_.data() : diff_a_.data());
    layers_[i]->backward(ctx, n, src_of(p, i, x), act_[i].data(), diff, target);
    if (ctx.grad_listener) ctx.grad_listener->backward_done(layers_[i]->name());
    diff = target;
  }
  // No layer wrote diff_x (no layers, or only views of the plain input): it is diff_out.
  if (diff_x && diff != diff_x)
    std::memcpy(diff_x, diff, sizeof(float) * static_cast<size_t>(n) * in_.size());
}

}  // namespace vd
