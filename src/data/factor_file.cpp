// read_factors: /factors and its attributes, checked.
#include "data/factor_file.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/h5.hpp"

namespace vd {

namespace {
std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find(',', pos), text.size());
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}
}  // namespace

FactorTable read_factors(const std::string& path) {
  h5::File f = h5::open_file(path);
  if (!h5::is_dataset(f, "/factors"))
    throw DataError("'" + path +
                    "' has no /factors data set; the disentanglement metrics need "
                    "the known factors of every row, as 'vae_data shapes' writes them");
  h5::Dataset d = h5::open_dataset(f, "/factors");
  const std::vector<int64_t> dims = h5::dims_of(d);
  if (dims.size() != 2 || dims[1] < 1 || !h5::is_integer(h5::dtype_of(d)))
    throw DataError("'" + path + "': /factors must be an integer array [N, F], but it is " +
                    h5::dtype_name(d) + " " + shape_text(dims));
  FactorTable t;
  t.rows = dims[0];
  t.F = static_cast<int>(dims[1]);
  t.values.resize(static_cast<size_t>(t.rows) * t.F);
  if (t.rows > 0) h5::read_all(d, H5T_NATIVE_INT32, t.values.data());

  if (h5::has_attribute(d, "sizes")) {
    h5::Attribute a(VD_H5(H5Aopen(d, "sizes", H5P_DEFAULT), "cannot open /factors' sizes"));
    h5::Dataspace space(VD_H5(H5Aget_space(a), "cannot read the shape of /factors' sizes"));
    const hssize_t count = H5Sget_simple_extent_npoints(space);
    if (count != t.F)
      throw DataError("'" + path + "': /factors has " + std::to_string(t.F) +
                      " columns but its attribute sizes has " + std::to_string(count) + " values");
    t.sizes.resize(static_cast<size_t>(t.F));
    VD_H5(H5Aread(a, H5T_NATIVE_INT64, t.sizes.data()), "cannot read /factors' sizes");
  } else {
    t.sizes.assign(static_cast<size_t>(t.F), 1);
    for (size_t i = 0; i < t.values.size(); ++i)
      t.sizes[i % t.F] = std::max<int64_t>(t.sizes[i % t.F], int64_t{t.values[i]} + 1);
  }
  if (h5::has_attribute(d, "names")) t.names = split(h5::read_string_attribute(d, "names"));
  if (static_cast<int>(t.names.size()) != t.F) {
    t.names.clear();
    for (int k = 0; k < t.F; ++k) t.names.push_back("factor" + std::to_string(k));
  }
  for (size_t i = 0; i < t.values.size(); ++i) {
    const auto k = static_cast<size_t>(i % t.F);
    if (t.values[i] < 0 || t.values[i] >= t.sizes[k])
      throw DataError("'" + path + "': /factors row " + std::to_string(i / t.F) + " has " +
                      t.names[k] + " = " + std::to_string(t.values[i]) + ", outside 0.." +
                      std::to_string(t.sizes[k] - 1));
  }
  return t;
}

}  // namespace vd
