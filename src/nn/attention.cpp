// vd::Attention: parameters, the memory check, forward/backward through GroupNorm kernels and
// the oneDNN primitives of nn/dnnl_attention, and the "attn" layer kind.
#include "nn/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"
#include "nn/registry.hpp"

namespace vd {

namespace {

Shape checked_image(const std::string& name, const Shape& in) {
  VD_CHECK(!in.flat(), ShapeError,
           "attn layer " + name + " needs an image input (C x H x W) but gets a flat vector of " +
               in.text() + " values; put a 'reshape CxHxW' before it");
  return in;
}

// The largest divisor of c that is at most g: the group count to suggest.
int divisor_below(int c, int g) {
  for (int d = std::min(c, g); d > 1; --d)
    if (c % d == 0) return d;
  return 1;
}

std::string gigabytes(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GB", bytes / 1e9);
  return buf;
}

}  // namespace

Attention::Attention(ParamStore& store, std::string name, Shape in, int groups, float eps)
    : Layer(name, checked_image(name, in), in), store_(store), groups_(groups), eps_(eps) {
  VD_CHECK(groups >= 1 && in.c % groups == 0, ShapeError,
           "attn layer " + this->name() + ": " + std::to_string(groups) +
               " groups do not divide its " + std::to_string(in.c) +
               " channels (GroupNorm needs C % G == 0); write 'attn g" +
               std::to_string(divisor_below(in.c, std::max(groups, 1))) +
               "' or another divisor of " + std::to_string(in.c));
  const int64_t c = in.c;
  gn_weight_ = store_.add(this->name() + ".group_norm.weight", {c});
  gn_bias_ = store_.add(this->name() + ".group_norm.bias", {c});
  const char* proj[4] = {"to_q", "to_k", "to_v", "to_out"};
  for (int i = 0; i < 4; ++i) {
    weight_[i] = store_.add(this->name() + "." + proj[i] + ".weight", {c, c});
    bias_[i] = store_.add(this->name() + "." + proj[i] + ".bias", {c});
  }
}

std::vector<size_t> Attention::param_entries() const {
  std::vector<size_t> e{gn_weight_, gn_bias_};
  for (int i = 0; i < 4; ++i) {
    e.push_back(weight_[i]);
    e.push_back(bias_[i]);
  }
  return e;
}

void Attention::init(Rng& rng) {
  const int C = in_shape().c;
  float* gw = store_.param(gn_weight_);
  float* gb = store_.param(gn_bias_);
  for (int c = 0; c < C; ++c) {
    gw[c] = 1.0f;
    gb[c] = 0.0f;
  }
  const double bound = 1.0 / std::sqrt(static_cast<double>(C));
  for (int i = 0; i < 4; ++i) {
    float* w = store_.param(weight_[i]);  // [C, C]
    for (size_t j = 0, m = static_cast<size_t>(C) * C; j < m; ++j)
      w[j] = static_cast<float>(rng.uniform(-bound, bound));
    float* b = store_.param(bias_[i]);  // [C]
    for (int j = 0; j < C; ++j) b[j] = static_cast<float>(rng.uniform(-bound, bound));
  }
}

std::string Attention::describe() const {
  return "attn g" + std::to_string(groups_);
}

double Attention::flops_per_sample() const {
  const double S = static_cast<double>(in_shape().spatial_size()), C = in_shape().c;
  return 2.0 * (4.0 * S * C * C + 2.0 * S * S * C);
}

double Attention::score_bytes(int64_t n, int64_t tokens) {
  const double S = static_cast<double>(tokens);
  return static_cast<double>(n) * S * S * sizeof(float) * kScoreMatrices;
}

Attention::PerBatch& Attention::batch(int n) {
  auto it = batches_.find(n);
  VD_CHECK(it != batches_.end(), Error,
           "attn layer " + name() + " runs batch size " + std::to_string(n) +
               " without prepare(); run it inside a Graph");
  return it->second;
}

Layout Attention::prepare(Context& ctx, int n, const Layout& src) {
  const Shape& in = in_shape();
  const int64_t S = in.spatial_size();
  const double bytes = score_bytes(n, S);
  VD_CHECK(bytes <= kScoreBudgetBytes, ShapeError,
           "attn layer " + name() + " on a " + in.text() + " map needs " + std::to_string(S) +
               " x " + std::to_string(S) + " scores per sample, " + std::to_string(kScoreMatrices) +
               " such matrices (the probabilities and their gradient): " + gigabytes(bytes) +
               " for a batch of " + std::to_string(n) + ", over the budget of " +
               gigabytes(kScoreBudgetBytes) +
               " (Attention::kScoreBudgetBytes); put it after more down-sampling or use a "
               "smaller batch");
  auto it = batches_.find(n);
  // A batch size seen before with another src layout (a layer called outside one Graph) is
  // rebuilt: the reorders and GroupNorm's block follow src.
  if (it != batches_.end() && it->second.src != src) {
    batches_.erase(it);
    it = batches_.end();
  }
  if (it == batches_.end()) {
    PerBatch b;
    b.src = src;
    const int block = channel_block_of(src);
    b.work = block ? src : plain_layout(n, in);
    if (!block) {
      b.src_to_work = std::make_unique<ReorderPrims>(ctx.engine, src, b.work);
      b.work_to_src = std::make_unique<ReorderPrims>(ctx.engine, b.work, src);
    }
    b.dims.n = n;
    b.dims.c = in.c;
    b.dims.s = S;
    b.dims.groups = groups_;
    b.dims.block = block ? block : 1;
    check_group_norm_dims(b.dims);
    b.work_floats = layout_floats(b.work);
    b.prims =
        // Any spatial rank as [N, C, S / W, W]: the tokens are the same either way.
        std::make_unique<AttentionPrims>(
            ctx.engine, AttentionShape{n, in.c, static_cast<int>(S / in.w), in.w}, b.work);
    it = batches_.emplace(n, std::move(b)).first;
  }
  return it->second.work;
}

int Attention::work_block(int n) const {
  const auto it = batches_.find(n);
  return it == batches_.end() ? 0 : static_cast<int>(it->second.dims.block);
}

void Attention::reserve(const PerBatch& b, bool backward) {
  const size_t tokens = static_cast<size_t>(b.dims.n * b.dims.s * b.dims.c);  // N * S * C
  const size_t scores = static_cast<size_t>(b.dims.n) * b.dims.s * b.dims.s;
  const size_t stats = static_cast<size_t>(b.dims.n * b.dims.groups);
  const auto grow = [](std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  if (!backward) {
    for (auto* v : {&t_, &q_, &k_, &v_, &ctx_, &o_}) grow(*v, tokens);
    grow(a_, scores);
    grow(h_, b.work_floats);
    grow(mean_, stats);
    grow(rstd_, stats);
    if (b.src_to_work) grow(src_work_, b.work_floats);
  } else {
    for (auto* v : {&diff_ctx_, &diff_q_, &diff_k_, &diff_v_, &diff_t_}) grow(*v, tokens);
    grow(diff_a_, scores);
    if (b.work_to_src) grow(diff_work_, b.work_floats);
  }
}

void Attention::forward(Context& ctx, int n, const float* src, float* dst) {
  PerBatch& b = batch(n);
  reserve(b, false);
  AttentionPrims& p = *b.prims;
  dnnl::stream& st = ctx.stream;
  // x in the work layout (the caller's src unless its layout needs a reorder).
  const float* x = src;
  if (b.src_to_work) {
    b.src_to_work->run(st, src, src_work_.data());
    x = src_work_.data();
  }
  const float* W[4] = {store_.param(weight_[0]), store_.param(weight_[1]), store_.param(weight_[2]),
                       store_.param(weight_[3])};
  const float* B[4] = {store_.param(bias_[0]), store_.param(bias_[1]), store_.param(bias_[2]),
                       store_.param(bias_[3])};
  // h = GroupNorm(x) in the work layout; mean, rstd [N, G] kept for backward.
  group_norm_forward(b.dims, eps_, x, store_.param(gn_weight_), store_.param(gn_bias_), h_.data(),
                     mean_.data(), rstd_.data());
  p.to_tokens(st, h_.data(), t_.data());  // t [N, S, C]
  p.project(st, t_.data(), W[0], B[0], q_.data());
  p.project(st, t_.data(), W[1], B[1], k_.data());
  p.project(st, t_.data(), W[2], B[2], v_.data());
  p.scores(st, q_.data(), k_.data(), a_.data());  // a [N, S, S]
  p.context(st, a_.data(), v_.data(), ctx_.data());
  p.project(st, ctx_.data(), W[3], B[3], o_.data());  // o [N, S, C]
  // y = x + o in the work layout (padding: zeros + x's zeros).
  p.from_tokens(st, o_.data(), dst);
  for (size_t i = 0; i < b.work_floats; ++i) dst[i] += x[i];
}

void Attention::backward(Context& ctx, int n, const float* src, const float* /*dst*/,
                         float* diff_dst, float* diff_src) {
  PerBatch& b = batch(n);
  reserve(b, true);
  AttentionPrims& p = *b.prims;
  dnnl::stream& st = ctx.stream;
  const float* x = src;
  if (b.src_to_work) {  // again: cheaper than keeping a copy per batch size
    b.src_to_work->run(st, src, src_work_.data());
    x = src_work_.data();
  }
  const auto W = [&](int i) { return store_.param(weight_[i]); };
  const auto dW = [&](int i) { return store_.grad(weight_[i]); };
  const auto dB = [&](int i) { return store_.grad(bias_[i]); };
  // In reverse order of forward. diff_o [N, S, C] from diff_dst (work layout) into o_.
  p.to_tokens(st, diff_dst, o_.data());
  p.project_backward_weights(st, ctx_.data(), o_.data(), dW(3), dB(3));
  p.project_backward_data(st, o_.data(), W(3), diff_ctx_.data(), false);
  p.context_backward(st, a_.data(), v_.data(), diff_ctx_.data(), diff_a_.data(), diff_v_.data());
  p.scores_backward(st, q_.data(), k_.data(), a_.data(), diff_a_.data(), diff_q_.data(),
                    diff_k_.data());
  // dt = dq Wq + dk Wk + dv Wv [N, S, C].
  float* dproj[3] = {diff_q_.data(), diff_k_.data(), diff_v_.data()};
  for (int i = 0; i < 3; ++i) {
    p.project_backward_weights(st, t_.data(), dproj[i], dW(i), dB(i));
    p.project_backward_data(st, dproj[i], W(i), diff_t_.data(), i > 0);
  }
  p.from_tokens(st, diff_t_.data(), h_.data());  // diff_h in the work layout
  // diff_x = diff_dst (the residual) + GroupNorm's backward of diff_h (nullptr: only
  // GroupNorm's parameter gradients).
  float* diff_x = !diff_src ? nullptr : b.work_to_src ? diff_work_.data() : diff_src;
  if (diff_x)
    for (size_t i = 0; i < b.work_floats; ++i) diff_x[i] = diff_dst[i];
  group_norm_backward(b.dims, x, mean_.data(), rstd_.data(), store_.param(gn_weight_), h_.data(),
                      diff_x, store_.grad(gn_weight_), store_.grad(gn_bias_),
                      GradWrite::Accumulate);
  if (diff_x && b.work_to_src) b.work_to_src->run(st, diff_work_.data(), diff_src);
}

std::string Attention::impl_info(Context& /*ctx*/, int n) {
  PerBatch& b = batch(n);
  const int block = static_cast<int>(b.dims.block);
  const std::string work = layout_name(in_shape().rank, block);
  return "work layout " + work + (b.src_to_work ? " (src reordered)" : "") + ", tokens nhwc; " +
         b.prims->impl_info();
}

// ---------------------------------------------------------------------------------------------
// The kind: "attn [gG]".

namespace {

int parse_groups(const LayerText& l) {
  if (l.has_body) throw SyntaxError("'attn' takes no layers in parentheses; write 'attn [gG]'");
  if (l.args.size() > 1)
    throw SyntaxError("'attn' takes at most one setting, the group count, e.g. 'attn g32'");
  int g = Attention::kDefaultGroups;
  if (!l.args.empty()) {
    const std::string& a = l.args[0];
    if (a.size() < 2 || a[0] != 'g' || !parse_int(a.substr(1), g) || g < 1)
      throw SyntaxError("'" + a +
                        "' is not a group count; 'attn' takes 'gG' with G >= 1 dividing the "
                        "channels, e.g. 'attn g32'");
  }
  return g;
}

}  // namespace

LayerKind attn_kind() {
  LayerKind k;
  k.keyword = "attn";
  k.syntax = "attn [gG]";
  k.what =
      "spatial self-attention over the H*W positions (one head of C channels) after a GroupNorm "
      "of G groups (32), eps 1e-6, plus its input";
  k.torch = "diffusers Attention (one head, residual)";
  k.params = true;
  k.check = [](const LayerText& l) { parse_groups(l); };
  k.build = [](const BuildSite& s, const LayerText& l) -> std::unique_ptr<Layer> {
    return std::make_unique<Attention>(s.store, s.name, s.in, parse_groups(l));
  };
  return k;
}

}  // namespace vd
