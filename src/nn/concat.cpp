// vd::ConcatCondition: row-wise copies of the input and the condition.
#include "nn/concat.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace vd {

ConcatCondition::ConcatCondition(std::string name, Shape in, int k, const float* const* condition)
    : Layer(std::move(name), in, Shape{static_cast<int>(in.size()) + k, 1, 1}),
      d_(static_cast<int>(in.size())),
      k_(k),
      condition_(condition) {
  VD_CHECK(k > 0 && condition, ShapeError, "layer " + this->name() + " needs a condition size");
}

Layout ConcatCondition::prepare(Context& /*ctx*/, int n, const Layout& src) {
  VD_CHECK(is_plain(src, n, in_shape()), ShapeError,
           "layer " + name() + " needs plain input; put a flatten layer before it");
  return plain_layout(n, out_shape());
}

void ConcatCondition::forward(Context& /*ctx*/, int n, const float* src, float* dst) {
  const float* c = *condition_;
  VD_CHECK(c, Error, "layer " + name() + " ran without a condition (labels) for the batch");
  const size_t d = static_cast<size_t>(d_), k = static_cast<size_t>(k_);
  for (size_t b = 0; b < static_cast<size_t>(n); ++b) {
    std::copy_n(src + b * d, d, dst + b * (d + k));
    std::copy_n(c + b * k, k, dst + b * (d + k) + d);
  }
}

void ConcatCondition::backward(Context& /*ctx*/, int n, const float* /*src*/, const float* /*dst*/,
                               float* diff_dst, float* diff_src) {
  if (!diff_src) return;
  const size_t d = static_cast<size_t>(d_), k = static_cast<size_t>(k_);
  for (size_t b = 0; b < static_cast<size_t>(n); ++b)
    std::copy_n(diff_dst + b * (d + k), d, diff_src + b * d);
}

}  // namespace vd
