// Checkpoints in the layout vae_dist wrote before its groups kept their links in their object
// headers (HDF5's default: past 8 links a group keeps them in a fractal heap), for tests that
// files of that layout, already on users' disks, are still read safely when damaged.
#pragma once
#include <hdf5.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/h5.hpp"

namespace vd::testing {

// Copies the checkpoint `from` to `to` object by object: the same 1.10 file format, root
// attributes and data sets, but every group created with HDF5's default link storage, as
// write_checkpoint created /params, /adam/exp_avg and /adam/exp_avg_sq before. (The groups
// of a checkpoint hold no attributes.)
inline void write_heap_link_copy(const std::string& from, const std::string& to) {
  h5::File src = h5::open_file(from);
  h5::File dst = h5::create_file(to, /*checksummed=*/true);
  for (const std::string& name : h5::list_attributes(src)) {
    h5::Attribute in(VD_H5(H5Aopen(src, name.c_str(), H5P_DEFAULT), "open " + name));
    h5::Datatype type(VD_H5(H5Aget_type(in), "type of " + name));
    h5::Dataspace space(VD_H5(H5Aget_space(in), "space of " + name));
    std::vector<char> value(H5Aget_storage_size(in));
    VD_H5(H5Aread(in, type, value.data()), "read " + name);
    h5::Attribute out(VD_H5(H5Acreate2(dst, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                            "create " + name));
    VD_H5(H5Awrite(out, type, value.data()), "write " + name);
  }
  for (const std::string& name : h5::list_datasets(src, "/", true)) {
    // The data set's groups first, each with HDF5's default creation properties.
    for (size_t slash = name.find('/', 1); slash != std::string::npos;
         slash = name.find('/', slash + 1)) {
      const std::string group = name.substr(0, slash);
      if (!h5::exists(dst, group))
        h5::Group(VD_H5(H5Gcreate2(dst, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                        "create " + group));
    }
    VD_H5(H5Ocopy(src, name.c_str(), dst, name.c_str(), H5P_DEFAULT, H5P_DEFAULT), "copy " + name);
  }
}

// Where the direct blocks of fractal heaps start in a file's bytes (signature "FHDB"): in a
// copy above, the blocks that hold the groups' links.
inline std::vector<size_t> heap_block_offsets(const std::vector<char>& bytes) {
  std::vector<size_t> out;
  for (size_t i = 0; i + 4 <= bytes.size(); ++i)
    if (std::memcmp(bytes.data() + i, "FHDB", 4) == 0) out.push_back(i);
  return out;
}

}  // namespace vd::testing
