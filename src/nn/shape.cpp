// vd::Shape's dimensions and text (see shape.hpp).
#include "nn/shape.hpp"

#include <charconv>

namespace vd {

Shape Shape::from_dims(const std::vector<int64_t>& dims) {
  auto i = [](int64_t v) { return static_cast<int>(v); };
  switch (dims.size()) {
    case 2:
      return signal(i(dims[0]), i(dims[1]));
    case 3:
      return Shape{i(dims[0]), i(dims[1]), i(dims[2])};
    case 4:
      return volume(i(dims[0]), i(dims[1]), i(dims[2]), i(dims[3]));
    default: {
      int64_t size = 1;
      for (int64_t v : dims) size *= v;
      return Shape{i(size), 1, 1};
    }
  }
}

std::vector<int64_t> Shape::spatial() const {
  if (rank == 1) return {w};
  if (rank == 3) return {d, h, w};
  return {h, w};
}

std::vector<int64_t> Shape::dims() const {
  if (flat() && rank == 2) return {c, 1, 1};
  std::vector<int64_t> out{c};
  for (int64_t v : spatial()) out.push_back(v);
  return out;
}

Shape Shape::with_spatial(int channels, const std::vector<int64_t>& s) const {
  std::vector<int64_t> dims{channels};
  dims.insert(dims.end(), s.begin(), s.end());
  return from_dims(dims);
}

std::string Shape::text() const {
  if (flat()) return std::to_string(c);
  std::string out = std::to_string(c);
  for (int64_t v : spatial()) {
    out += 'x';
    out += std::to_string(v);
  }
  return out;
}

std::string Shape::kind() const {
  return flat() ? "flat" : std::to_string(rank) + "-D";
}

bool parse_shape_text(const std::string& text, Shape& shape) {
  std::vector<int64_t> dims;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find('x', begin);
    const std::string part = text.substr(begin, end == std::string::npos ? end : end - begin);
    int64_t v = 0;
    const auto res = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || res.ec != std::errc() || res.ptr != part.data() + part.size() || v < 1 ||
        v > (int64_t{1} << 30))
      return false;
    dims.push_back(v);
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  if (dims.size() > 4) return false;
  shape = Shape::from_dims(dims);
  return true;
}

}  // namespace vd
