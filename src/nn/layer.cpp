// vd::Shape text for messages and start-up tables (the layout helpers live in dnnl_prims.cpp).
#include "nn/layer.hpp"

namespace vd {

std::string Shape::text() const {
  if (flat()) return std::to_string(c);
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

}  // namespace vd
