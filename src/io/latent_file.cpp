// Writing the encodings file: create once with its sizes, then write row blocks.
#include "io/latent_file.hpp"

#include "core/h5.hpp"

namespace vd {

void create_latent_file(const std::string& path, const LatentFileInfo& info) {
  try {
    h5::File file = h5::create_file(path);
    h5::write_attribute(file, "format", "vae_dist-latents");
    h5::write_attribute(file, "checkpoint", info.checkpoint);
    h5::write_attribute(file, "weights", info.weights);
    h5::write_attribute(file, "data", info.data);
    h5::write_attribute(file, "dataset", info.dataset);
    const int64_t dims[2] = {info.rows, info.latent_dim};
    h5::create_dataset<float>(file, "/mu", dims);
    h5::create_dataset<float>(file, "/logvar", dims);
    if (info.labels)
      h5::create_dataset<int32_t>(file, "/labels", std::span<const int64_t>(dims, 1));
  } catch (const IoError& e) {
    throw IoError("cannot create the encodings file '" + path + "': " + e.what() +
                  "; check the --out path and its permissions");
  }
}

void write_latent_rows(const std::string& path, int64_t begin, int64_t n, const float* mu,
                       const float* logvar, const int32_t* labels) {
  if (n == 0) return;
  try {
    h5::File file = h5::open_file(path, true);
    h5::write_rows<float>(h5::open_dataset(file, "/mu"), begin, n, mu);
    h5::write_rows<float>(h5::open_dataset(file, "/logvar"), begin, n, logvar);
    if (labels) h5::write_rows<int32_t>(h5::open_dataset(file, "/labels"), begin, n, labels);
  } catch (const IoError& e) {
    throw IoError("cannot write the encodings file '" + path + "': " + e.what() +
                  "; check free disk space");
  }
}

}  // namespace vd
