// vae_latent: uses a trained model (any vae_dist checkpoint; its architecture comes from the
// configuration stored in it). Subcommands encode a data set into HDF5, decode codes back
// into the data's units (HDF5), and draw PNG grids: interpolations, class arithmetic, samples
// near an image, the 2-D manifold, prior samples; disentanglement metrics against known
// factors; anomaly scores of every row (score).
// Runs on 1 or P MPI ranks: encode, the class means, the codes of disentanglement and the
// scores read one shard per rank; the pictures are drawn by rank 0. Options are parsed before
// MPI starts, as in vae_dist.
#include <omp.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "app/main_support.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "core/version.hpp"
#include "data/dataset_file.hpp"
#include "data/factor_file.hpp"
#include "data/shard.hpp"
#include "data/standardize.hpp"
#include "io/latent_file.hpp"
#include "io/metrics_log.hpp"
#include "nn/context.hpp"
#include "parallel/comm.hpp"
#include "train/model_config.hpp"
#include "vae/anomaly.hpp"
#include "vae/detection_metrics.hpp"
#include "vae/disentanglement.hpp"
#include "vae/image_quality.hpp"
#include "vae/latent.hpp"
#include "vae/latent_images.hpp"
#include "vae/sample_grids.hpp"

namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

// ---- Subcommands and their options --------------------------------------------------------

struct Subcommand {
  std::string name, usage, what;
  std::function<void(po::options_description&)> options;  // beyond --checkpoint/--threads/--help
};

void data_options(po::options_description& d) {
  d.add_options()("data", po::value<std::string>()->value_name("<str>"),
                  "HDF5 data set file (default: the checkpoint's test-data, else its data)")(
      "dataset", po::value<std::string>()->value_name("<str>"),
      "data set name inside the file (default: the checkpoint's)");
}

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> subs = {
      {"encode", "encode --checkpoint C --data D --out F.h5",
       "Writes /mu and /logvar [N, L] (and /labels when the data have them) of every row of D,\n"
       "in the data's row order; each rank encodes its own shard.",
       [](po::options_description& d) {
         data_options(d);
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "HDF5 file to write")(
             "batch-size", po::value<int>()->value_name("<int>")->default_value(1000),
             "rows encoded at once; an integer in 1..100000");
       }},
      {"decode", "decode --checkpoint C --latent F.h5 --out G.h5 [--z mu]",
       "Writes /mean [N, data shape] float32: the mean of p(x|z) for every row z of F's /mu\n"
       "(the file encode writes; --z names another float data set [N, L]), in the data's units\n"
       "(a --standardize run's mapped back). A conditional model decodes row i with F's\n"
       "/labels[i], or every row with --class; /labels is written beside /mean.",
       [](po::options_description& d) {
         d.add_options()("latent", po::value<std::string>()->value_name("<str>")->required(),
                         "HDF5 file of codes, e.g. vae_latent encode's output")(
             "z", po::value<std::string>()->value_name("<str>")->default_value("mu"),
             "data set of the codes in --latent, float [N, L]")(
             "out", po::value<std::string>()->value_name("<str>")->required(),
             "HDF5 file to write")("class",
                                   po::value<int>()->value_name("<int>")->default_value(-1),
                                   "conditional model: the label of every row; -1 = --latent's "
                                   "/labels");
       }},
      {"interpolate", "interpolate --checkpoint C --out F.png [--pairs 8 --steps 10 --spherical]",
       "Rows that go from one image to another: image a, the decodings of points between\n"
       "their encodings mu(a) and mu(b), image b. Pairs are drawn from D by --seed; a\n"
       "conditional model pairs images of one class and decodes with that class.",
       [](po::options_description& d) {
         data_options(d);
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "PNG file to write")(
             "pairs", po::value<int>()->value_name("<int>")->default_value(8),
             "rows (image pairs); an integer in 1..64")(
             "steps", po::value<int>()->value_name("<int>")->default_value(10),
             "decoded points per row, end points included; an integer in 2..64")(
             "spherical", po::bool_switch(), "spherical interpolation (slerp) instead of linear")(
             "seed", po::value<uint64_t>()->value_name("<int>")->default_value(1),
             "random seed of the pairs");
       }},
      {"arithmetic", "arithmetic --checkpoint C --out DIR [--from 0 --to 1]",
       "Class arithmetic in latent space, over the labelled data D:\n"
       "  DIR/class_means.h5    /class_means and /class_spreads [K, L] (mean and standard\n"
       "                        deviation of mu per class), /class_counts [K]\n"
       "  DIR/class_samples.png one row per class k: decodings of z = mean_k + spread * sd_k * "
       "eps\n"
       "                        (a conditional model: z from the prior, decoded with label k)\n"
       "  DIR/transfer.png      the first --count images of class --from, each followed by\n"
       "                        decodings of mu + alpha (mean_to - mean_from), alpha = 0..1\n"
       "                        (a conditional model: decoded with label --from, then --to)",
       [](po::options_description& d) {
         data_options(d);
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "directory to write into")(
             "from", po::value<int>()->value_name("<int>")->default_value(0),
             "class whose images are transferred")(
             "to", po::value<int>()->value_name("<int>")->default_value(1),
             "class they are moved towards")(
             "count", po::value<int>()->value_name("<int>")->default_value(8),
             "images transferred, and samples per class; an integer in 1..64")(
             "steps", po::value<int>()->value_name("<int>")->default_value(8),
             "decodings per transferred image; an integer in 2..64")(
             "spread", po::value<double>()->value_name("<num>")->default_value(1.0),
             "scale of the class samples' spread; a number in 0..1000")(
             "seed", po::value<uint64_t>()->value_name("<int>")->default_value(1),
             "random seed of the class samples")(
             "batch-size", po::value<int>()->value_name("<int>")->default_value(1000),
             "rows encoded at once; an integer in 1..100000");
       }},
      {"similar", "similar --checkpoint C --out F.png [--index 0,1,2 --count 10]",
       "One row per chosen image of D: the image, its reconstruction, and decodings of samples\n"
       "z = mu + spread * sigma * eps drawn near its encoding.",
       [](po::options_description& d) {
         data_options(d);
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "PNG file to write")(
             "index", po::value<std::string>()->value_name("<i,j,...>")->default_value("0,1,2,3"),
             "rows of D, comma-separated")("count",
                                           po::value<int>()->value_name("<int>")->default_value(10),
                                           "samples per image; an integer in 1..64")(
             "spread", po::value<double>()->value_name("<num>")->default_value(1.0),
             "scale of sigma; a number in 0..1000")(
             "seed", po::value<uint64_t>()->value_name("<int>")->default_value(1), "random seed");
       }},
      {"manifold", "manifold --checkpoint C --out F.png [--size 20]",
       "For a model with latent-dim 2: decodes a size x size grid over the normal quantiles of\n"
       "both latent axes, (i + 0.5) / size; z1 grows to the right, z2 upwards.",
       [](po::options_description& d) {
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "PNG file to write")(
             "size", po::value<int>()->value_name("<int>")->default_value(20),
             "grid points per axis; an integer in 2..64")(
             "class", po::value<int>()->value_name("<int>")->default_value(0),
             "label a conditional model decodes with");
       }},
      {"sample", "sample --checkpoint C --out F.png [--size 8 --temperature 1]",
       "A size x size grid of decodings of z = temperature * eps from the prior; a conditional\n"
       "model draws row r as class r mod K, or every row as --class.",
       [](po::options_description& d) {
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "PNG file to write")(
             "size", po::value<int>()->value_name("<int>")->default_value(8),
             "grid side; an integer in 1..32")(
             "temperature", po::value<double>()->value_name("<num>")->default_value(1.0),
             "scale of the prior draws; a number in 0..1000")(
             "class", po::value<int>()->value_name("<int>")->default_value(-1),
             "conditional model: the label of every row; -1 = row r is class r mod K")(
             "seed", po::value<uint64_t>()->value_name("<int>")->default_value(1), "random seed");
       }},
      {"disentanglement",
       "disentanglement --checkpoint C --data D.h5 --out R.json [--seed 0 --metrics ...]",
       "The beta-VAE and FactorVAE scores, MIG, SAP and DCI of the codes z = mu of D against\n"
       "its known factors (/factors, as vae_data shapes writes them), after disentanglement_lib\n"
       "(docs/latent.md#disentanglement-metrics). Each rank encodes its shard; rank 0 prints a\n"
       "table and writes R.json. The same result on any number of ranks.",
       [](po::options_description& d) {
         data_options(d);
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "JSON file to write")(
             "metrics",
             po::value<std::string>()->value_name("<list>")->default_value(
                 "beta_vae,factor_vae,mig,sap,dci"),
             "comma-separated; beta_vae and factor_vae need every factor combination")(
             "seed", po::value<uint64_t>()->value_name("<int>")->default_value(0),
             "random seed of every draw")(
             "train-points", po::value<int>()->value_name("<int>")->default_value(10000),
             "training points of each metric (MIG's points); an integer in 10..1000000")(
             "test-points", po::value<int>()->value_name("<int>")->default_value(5000),
             "test / evaluation points of each metric; an integer in 10..1000000")(
             "group-size", po::value<int>()->value_name("<int>")->default_value(64),
             "observations per beta-VAE / FactorVAE point; an integer in 2..10000")(
             "dci-alpha", po::value<double>()->value_name("<num>")->default_value(0.02),
             "DCI's lasso regularisation; a number >= 0")(
             "batch-size", po::value<int>()->value_name("<int>")->default_value(1000),
             "rows encoded at once; an integer in 1..100000");
       }},
      {"score",
       "score --checkpoint C --data D --out S.h5 [--iw-samples k --per-pixel --labels-normal "
       "LIST | --anomalies A.h5 --fpr 0.05 --normal-val 0.2]",
       "Anomaly scores of every row of D, in its row order (docs/latent.md, Anomaly scores): the\n"
       "negative ELBO, the importance-weighted -log p(x) (--iw-samples k), the reconstruction NLL\n"
       "and squared error through z = mu, PSNR and SSIM for images, and the per-feature\n"
       "log-likelihood (--per-pixel). Written to S.h5, their means as a table and to S.json.\n"
       "With known anomalies (--labels-normal or --anomalies): ROC-AUC and average precision of\n"
       "each score, and the threshold at --fpr on held-out normal rows with its TPR. The same\n"
       "result on any number of ranks.",
       [](po::options_description& d) {
         data_options(d);
         d.add_options()("out", po::value<std::string>()->value_name("<str>")->required(),
                         "HDF5 file to write; the means go to the same name with .json")(
             "iw-samples", po::value<int>()->value_name("<int>")->default_value(0),
             "importance samples k of -log p(x); 0 = none; an integer in 0..100000")(
             "per-pixel", po::bool_switch(),
             "also write each feature's log-likelihood log p(x_d | z = mu) [N, D]")(
             "labels-normal", po::value<std::string>()->value_name("<list>"),
             "the label values of D that are normal, comma-separated; the other rows are the "
             "known anomalies")("anomalies", po::value<std::string>()->value_name("<str>"),
                                "a file of known anomalies; every row of D is then normal")(
             "fpr", po::value<double>()->value_name("<num>")->default_value(0.05),
             "false-positive rate of the threshold; a number in (0, 1)")(
             "normal-val", po::value<std::string>()->value_name("<str>")->default_value("0.2"),
             "held-out normal rows for the threshold: a fraction in (0, 1) of D's normal rows "
             "(left out of every metric), or a file of normal rows")(
             "data-range", po::value<double>()->value_name("<num>")->default_value(1.0),
             "PSNR's and SSIM's data_range (the span of the image values); a number > 0")(
             "seed", po::value<uint64_t>()->value_name("<int>")->default_value(0),
             "random seed of the noise (a stream per row) and of the held-out split")(
             "batch-size", po::value<int>()->value_name("<int>")->default_value(1000),
             "rows scored at once; an integer in 1..100000");
       }},
  };
  return subs;
}

po::options_description description(const Subcommand& sub) {
  po::options_description d("Options", 100, 50);
  d.add_options()("checkpoint", po::value<std::string>()->value_name("<str>")->required(),
                  "a vae_dist checkpoint (checkpoint_stepNNNNNNNNN.h5)")(
      "weights", po::value<std::string>()->value_name("<str>")->default_value("auto"),
      "auto = the weights the run evaluated (--eval-weights); raw = the optimizer's; ema = "
      "the moving average (a run with --ema-decay)");
  sub.options(d);
  d.add_options()("threads", po::value<int>()->value_name("<int>")->default_value(0),
                  "OpenMP threads per rank; 0 = automatic")("help,h", "print this help and exit");
  return d;
}

std::string top_help() {
  std::string s =
      "Usage: vae_latent SUBCOMMAND --checkpoint C [options]\n"
      "Uses a model trained by vae_dist; the architecture comes from the checkpoint.\n"
      "Runs as one process or under mpirun (encode and class means read a shard per rank).\n\n"
      "Subcommands:\n";
  for (const auto& sub : subcommands()) s += "  vae_latent " + sub.usage + "\n";
  s += "\n'vae_latent SUBCOMMAND --help' lists a subcommand's options.\n"
       "--version prints the versions of vae_latent, oneDNN, HDF5 and MPI.\n";
  return s;
}

std::string sub_help(const Subcommand& sub) {
  std::ostringstream out;
  out << "Usage: vae_latent " << sub.usage << "\n" << sub.what << "\n\n" << description(sub);
  return out.str();
}

// The subcommand argv[1] names; nullptr for --help. Throws vd::ConfigError.
const Subcommand* find_subcommand(int argc, char** argv) {
  if (argc < 2) throw vd::ConfigError("give a subcommand");
  const std::string name = argv[1];
  if (name == "--help" || name == "-h") return nullptr;
  for (const auto& sub : subcommands())
    if (sub.name == name) return &sub;
  std::string names;
  for (const auto& sub : subcommands()) names += (names.empty() ? "" : ", ") + sub.name;
  throw vd::ConfigError("unknown subcommand '" + name + "'; use one of " + names);
}

// The subcommand's options (argv[2...]); an empty map for --help. Throws vd::ConfigError.
po::variables_map parse_options(const Subcommand& sub, int argc, char** argv, bool& help) {
  const auto desc = description(sub);
  po::variables_map vm;
  try {
    const int style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(argc - 1, argv + 1).options(desc).style(style).run(), vm);
    help = vm.count("help") > 0;
    if (!help) po::notify(vm);  // checks required options
  } catch (const po::error& e) {
    throw vd::ConfigError(e.what());
  }
  return vm;
}

// ---- Reading options ----------------------------------------------------------------------

int int_in(const po::variables_map& vm, const std::string& key, int lo, int hi) {
  const int v = vm[key].as<int>();
  if (v < lo || v > hi)
    throw vd::ConfigError("--" + key + ": " + std::to_string(v) +
                          " is out of range; it must be an integer in " + std::to_string(lo) +
                          ".." + std::to_string(hi));
  return v;
}

// A finite number >= 0 (--dci-alpha).
double nonnegative(const po::variables_map& vm, const std::string& key) {
  const double v = vm[key].as<double>();
  if (!(v >= 0) || !std::isfinite(v))
    throw vd::ConfigError("--" + key + ": " + std::to_string(v) + " must be a number >= 0");
  return v;
}

// --temperature and --spread: finite, in 0..1000. A larger scale moves z so far out of the
// prior that the decoder gives nothing finite.
constexpr double kMaxScale = 1000;
double scale_in_range(const po::variables_map& vm, const std::string& key) {
  const double v = vm[key].as<double>();
  if (!(v >= 0 && v <= kMaxScale)) {
    std::ostringstream text;
    text << v;
    throw vd::ConfigError("--" + key + ": " + text.str() +
                          " is out of range; it must be a number in 0..1000");
  }
  return v;
}

// An --out that names a file: an existing directory is refused before anything is computed
// (encode wrote <dir>.tmp and then could not rename it over the directory).
void check_file_out(const std::string& out, const std::string& example) {
  std::error_code ec;
  if (fs::is_directory(out, ec))
    throw vd::ConfigError("--out '" + out + "' is a directory; give a file name, e.g. --out " +
                          (fs::path(out) / example).string());
}

std::vector<int64_t> index_list(const std::string& text) {
  const auto out = vd::app::nonnegative_list(text);
  if (!out)
    throw vd::ConfigError("--index: '" + text +
                          "' is not a comma-separated list of rows >= 0 (e.g. 0,1,2)");
  if (out->size() > 64) throw vd::ConfigError("--index: give at most 64 rows");
  return *out;
}

// ---- Running ------------------------------------------------------------------------------

// What every subcommand starts from: the model and, where it reads data, which file.
struct Session {
  const vd::Comm& comm;
  const po::variables_map& vm;
  vd::Context ctx;
  std::unique_ptr<vd::TrainedModel> model;
  std::string data, dataset;

  Session(const vd::Comm& c, const po::variables_map& v) : comm(c), vm(v) {
    omp_set_num_threads(vd::resolve_threads(vm["threads"].as<int>(), comm));
    const std::string w = vm["weights"].as<std::string>();
    if (w != "auto" && w != "raw" && w != "ema")
      throw vd::ConfigError("--weights is '" + w + "'; use auto, raw or ema");
    std::optional<vd::Weights> weights;
    if (w != "auto") weights = w == "ema" ? vd::Weights::Ema : vd::Weights::Raw;
    model = vd::load_trained_model(vm["checkpoint"].as<std::string>(), comm, weights);
    if (comm.is_root() && !model->weights_note.empty())
      std::printf("using %s\n", model->weights_note.c_str());
    const vd::Options& o = model->options;
    data = vm.count("data") ? vm["data"].as<std::string>()
                            : (o.test_data.empty() ? o.data : o.test_data);
    dataset = vm.count("dataset") ? vm["dataset"].as<std::string>() : o.dataset;
  }
  vd::LatentModel& vae() { return *model->model; }
  const vd::Shape& shape() const { return model->model->config().data; }
  // This rank's shard of the data (world = 1: the whole file), checked as vae_dist checks it.
  vd::Shard read(int rank, int world) const { return read_file(data, rank, world); }
  // The same for another file of the model's data (score's --anomalies and --normal-val).
  vd::Shard read_file(const std::string& path, int rank, int world) const {
    const auto check = vae_likelihood() == vd::Likelihood::Bernoulli ? vd::ValueCheck::UnitInterval
                                                                     : vd::ValueCheck::None;
    vd::Shard s = vd::Shard::read(path, dataset, rank, world, check);
    // By shape, as vae_dist checks its test data: 14x56 or 784 values are not 1x28x28 images.
    vd::check_sample_shape(s, shape(), "data",
                           "the model of checkpoint '" + model->path + "' takes",
                           "give --data of the shape it was trained on");
    if (model->classes() > 0 && !s.has_labels())
      throw vd::DataError("the model is conditional, so it needs class labels, but '" + path +
                          "' has no /labels data set");
    if (model->classes() > 0)
      vd::check_labels(s, model->classes(), "data", "the checkpoint '" + model->path + "'");
    // A model trained with --standardize encodes standardised data.
    vd::standardize(s, model->scaling);
    return s;
  }
  vd::Likelihood vae_likelihood() const { return model->model->config().likelihood; }
  std::string out() const { return vm["out"].as<std::string>(); }
};

// A temporary file that is removed unless kept: every failure after its creation (a write, the
// rename) leaves no <out>.tmp behind.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    std::error_code ec;
    if (!kept_) fs::remove(path_, ec);
  }
  const std::string& path() const { return path_; }
  void keep() { kept_ = true; }

 private:
  std::string path_;
  bool kept_ = false;
};

// Creates the parent directory of an output file.
void make_parent(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec)
    throw vd::IoError("cannot create the directory '" + parent.string() + "': " + ec.message() +
                      "; choose another --out");
}

// images [n, D] are in the model's units (the data's, or standardised ones for a model trained
// with --standardize, inputs included); they are drawn in the data's units.
void write_png(const Session& s, const std::string& path, const std::vector<float>& images, int n,
               int cols, const std::string& what) {
  // A picture of NaN or infinities would be a grey image and exit 0: refused instead.
  vd::check_finite_images(images, n, "'" + path + "'");
  make_parent(path);
  std::string note;
  if (!s.model->scaling.empty()) {
    std::vector<float> data_units = images;
    s.model->scaling.invert(data_units.data(), n);
    note = vd::write_grid_png(path, data_units, n, s.shape(), cols);
  } else {
    note = vd::write_grid_png(path, images, n, s.shape(), cols);
  }
  // 1-D and 3-D samples are not drawn as they are: the note says how.
  std::printf("wrote %s: %s%s\n", path.c_str(), what.c_str(),
              note.empty() ? "" : ("; " + note).c_str());
}

// Rows x of the whole file (rank 0's pictures) and their labels (0 when there are none).
struct Rows {
  std::vector<float> x;
  std::vector<int32_t> labels;
};
Rows gather_rows(const vd::Shard& shard, const std::vector<int64_t>& rows) {
  Rows r;
  r.x.resize(rows.size() * static_cast<size_t>(shard.sample_size()));
  for (int64_t i : rows)
    if (i >= shard.rows())
      throw vd::ConfigError("row " + std::to_string(i) + " is beyond the " +
                            std::to_string(shard.rows()) + " rows of '" + shard.file() + "'");
  shard.gather(rows, r.x.data());
  for (int64_t i : rows) r.labels.push_back(shard.has_labels() ? shard.labels()[i] : 0);
  return r;
}

// mu and logvar [rows, L] of a shard, equal bit for bit to one process's encoding of the
// whole file: oneDNN's result for a row depends on the batch size and on the row's place in
// the batch, so every batch covers global rows [k*B, (k+1)*B) and runs at full size B, with
// zero rows where the shard does not reach.
void encode_shard(Session& s, const vd::Shard& shard, int B, float* mu, float* logvar) {
  const int L = s.model->latent_dim();
  const size_t D = static_cast<size_t>(shard.sample_size());
  const vd::RowRange range = shard.range();
  std::vector<float> x(static_cast<size_t>(B) * D), bmu(static_cast<size_t>(B) * L),
      blv(bmu.size());
  std::vector<int32_t> labels(static_cast<size_t>(B), 0);
  std::vector<int64_t> rows;
  for (int64_t g = range.begin / B * B; g < range.end; g += B) {
    const int64_t lo = std::max(g, range.begin), hi = std::min(g + B, range.end);
    std::fill(x.begin(), x.end(), 0.0f);
    rows.clear();
    for (int64_t r = lo; r < hi; ++r) rows.push_back(r - range.begin);
    const size_t at = static_cast<size_t>(lo - g);
    shard.gather(rows, x.data() + at * D);
    for (int64_t r = lo; r < hi; ++r)
      if (shard.has_labels())
        labels[static_cast<size_t>(r - g)] = shard.labels()[static_cast<size_t>(r - range.begin)];
    vd::encode_rows(s.ctx, s.vae(), B, x.data(), labels.data(), B, bmu.data(), blv.data());
    const size_t count = static_cast<size_t>(hi - lo) * L;
    const size_t dst = static_cast<size_t>(lo - range.begin) * L;
    std::copy_n(bmu.data() + at * L, count, mu + dst);
    if (logvar) std::copy_n(blv.data() + at * L, count, logvar + dst);
  }
}

void run_encode(Session& s) {
  const vd::Comm& comm = s.comm;
  const vd::Shard shard = s.read(comm.rank(), comm.size());
  const int L = s.model->latent_dim();
  const int64_t n = shard.rows();
  std::vector<float> mu(static_cast<size_t>(n) * L), logvar(mu.size());
  const int32_t* labels = shard.has_labels() ? shard.labels().data() : nullptr;
  encode_shard(s, shard, int_in(s.vm, "batch-size", 1, 100000), mu.data(), logvar.data());

  // Rank 0 creates the file under a temporary name; each rank then writes its block in turn.
  // Rank 0 removes the temporary file on any failure it sees (a rank that fails ends the job).
  const std::string out = s.out();
  std::optional<TempFile> tmp_file;
  if (comm.is_root()) tmp_file.emplace(out + ".tmp");
  const std::string tmp = out + ".tmp";
  if (comm.is_root()) {
    make_parent(out);
    vd::create_latent_file(tmp, {shard.global_rows(), L, shard.has_labels(), s.model->path, s.data,
                                 s.dataset, vd::weights_name(s.model->weights)});
  }
  comm.barrier();
  for (int r = 0; r < comm.size(); ++r) {
    if (r == comm.rank())
      vd::write_latent_rows(tmp, shard.range().begin, n, mu.data(), logvar.data(), labels);
    comm.barrier();
  }
  if (comm.is_root()) {
    std::error_code ec;
    fs::rename(tmp, out, ec);
    if (ec)
      throw vd::IoError("cannot rename '" + tmp + "' to '" + out + "': " + ec.message() +
                        "; choose another --out");
    tmp_file->keep();
    std::printf("wrote %s: /mu, /logvar [%lld, %d]%s of %s\n", out.c_str(),
                static_cast<long long>(shard.global_rows()), L,
                shard.has_labels() ? " and /labels" : "", s.data.c_str());
  }
}

void run_interpolate(Session& s) {
  if (!s.comm.is_root()) return;
  const int pairs = int_in(s.vm, "pairs", 1, 64), steps = int_in(s.vm, "steps", 2, 64);
  const bool spherical = s.vm["spherical"].as<bool>();
  const vd::Shard shard = s.read(0, 1);
  const int64_t N = shard.rows();
  if (N < 2) throw vd::DataError("'" + s.data + "' needs at least 2 rows to interpolate");
  vd::Rng rng(s.vm["seed"].as<uint64_t>());
  std::vector<int64_t> rows;
  const bool same_class = s.model->classes() > 0;
  for (int p = 0; p < pairs; ++p) {
    const int64_t a = static_cast<int64_t>(rng.below(static_cast<uint64_t>(N)));
    int64_t b = a;
    // A conditional model decodes with one label, so both ends are of a's class.
    for (int tries = 0;
         tries < 10000 && (b == a || (same_class && shard.labels()[b] != shard.labels()[a]));
         ++tries)
      b = static_cast<int64_t>(rng.below(static_cast<uint64_t>(N)));
    rows.push_back(a);
    rows.push_back(b);
  }
  const Rows r = gather_rows(shard, rows);
  const size_t D = static_cast<size_t>(shard.sample_size());
  std::vector<float> images;
  for (int p = 0; p < pairs; ++p) {
    const size_t a = 2 * static_cast<size_t>(p), b = a + 1;
    const auto row = vd::interpolation_row(s.ctx, s.vae(), r.x.data() + a * D, r.x.data() + b * D,
                                           r.labels[a], r.labels[b], steps, spherical);
    images.insert(images.end(), row.begin(), row.end());
  }
  write_png(s, s.out(), images, pairs * (steps + 2), steps + 2,
            std::to_string(pairs) + " rows: image, " + std::to_string(steps) + " " +
                (spherical ? "spherical" : "linear") + " steps, image");
}

void run_arithmetic(Session& s) {
  const vd::Comm& comm = s.comm;
  const int count = int_in(s.vm, "count", 1, 64), steps = int_in(s.vm, "steps", 2, 64);
  const float spread = static_cast<float>(scale_in_range(s.vm, "spread"));
  const vd::Shard shard = s.read(comm.rank(), comm.size());
  if (!shard.has_labels())
    throw vd::DataError("arithmetic needs class labels, but '" + s.data +
                        "' has no /labels data set; give a labelled file with --data");
  int64_t top = -1;
  for (int32_t l : shard.labels()) top = std::max<int64_t>(top, l);
  top = comm.allreduce_max(top);
  const int K = s.model->classes() > 0 ? s.model->classes() : static_cast<int>(top + 1);
  const int from = s.vm["from"].as<int>(), to = s.vm["to"].as<int>();
  for (const auto& [key, k] : {std::pair{"from", from}, std::pair{"to", to}})
    if (k < 0 || k >= K)
      throw vd::ConfigError(std::string("--") + key + ": class " + std::to_string(k) +
                            " is not among the data's classes 0.." + std::to_string(K - 1));

  // Class sums over every rank's shard, summed exactly.
  const int L = s.model->latent_dim();
  const int64_t n = shard.rows();
  std::vector<float> mu(static_cast<size_t>(n) * L);
  encode_shard(s, shard, int_in(s.vm, "batch-size", 1, 100000), mu.data(), nullptr);
  vd::ClassSums sums(K, L);
  sums.add(n, mu.data(), shard.labels().data());
  comm.allreduce_sum(sums.data());
  if (!comm.is_root()) return;

  const fs::path dir = s.out();
  const std::vector<float> means = sums.means(), sds = sums.spreads();
  {
    make_parent((dir / "class_means.h5").string());
    const std::string path = (dir / "class_means.h5").string();
    vd::h5::File f = vd::h5::create_file(path);
    vd::h5::write_attribute(f, "checkpoint", s.model->path);
    vd::h5::write_attribute(f, "data", s.data);
    const int64_t dims[2] = {K, L};
    vd::h5::write_dataset<float>(f, "/class_means", means, dims);
    vd::h5::write_dataset<float>(f, "/class_spreads", sds, dims);
    std::vector<int64_t> counts;
    for (int k = 0; k < K; ++k) counts.push_back(sums.count(k));
    vd::h5::write_dataset<int64_t>(f, "/class_counts", counts, std::span<const int64_t>(dims, 1));
    std::printf("wrote %s: /class_means, /class_spreads [%d, %d], /class_counts\n", path.c_str(), K,
                L);
  }

  vd::Rng rng(s.vm["seed"].as<uint64_t>());
  std::vector<float> images;
  for (int k = 0; k < K; ++k) {
    const size_t at = static_cast<size_t>(k) * L;
    if (sums.count(k) == 0 && s.model->classes() == 0) {
      images.insert(images.end(),
                    static_cast<size_t>(count) * static_cast<size_t>(s.shape().size()), 0.5f);
      continue;
    }
    const auto row = vd::class_samples(s.ctx, s.vae(), means.data() + at, sds.data() + at, k, count,
                                       spread, rng);
    images.insert(images.end(), row.begin(), row.end());
  }
  write_png(s, (dir / "class_samples.png").string(), images, K * count, count,
            std::to_string(K) + " rows, one per class, " + std::to_string(count) + " samples each");

  // Attribute transfer: the first images of class `from` (in rank 0's shard, which starts at
  // row 0, so the same images on any number of ranks unless the shard holds too few).
  std::vector<int64_t> chosen;
  for (int64_t i = 0; i < n && static_cast<int>(chosen.size()) < count; ++i)
    if (shard.labels()[static_cast<size_t>(i)] == from) chosen.push_back(i);
  if (chosen.empty())
    throw vd::DataError("no image of class " + std::to_string(from) + " in the first " +
                        std::to_string(n) + " rows of '" + s.data + "'; choose another --from");
  std::vector<float> delta(static_cast<size_t>(L));
  for (int j = 0; j < L; ++j)
    delta[j] = means[static_cast<size_t>(to) * L + j] - means[static_cast<size_t>(from) * L + j];
  const Rows r = gather_rows(shard, chosen);
  const size_t D = static_cast<size_t>(shard.sample_size());
  images.clear();
  int cols = 0;
  for (size_t i = 0; i < chosen.size(); ++i) {
    const auto row =
        vd::transfer_row(s.ctx, s.vae(), r.x.data() + i * D, from, to, delta.data(), steps);
    cols = static_cast<int>(row.size() / D);
    images.insert(images.end(), row.begin(), row.end());
  }
  write_png(s, (dir / "transfer.png").string(), images, static_cast<int>(chosen.size()) * cols,
            cols,
            std::to_string(chosen.size()) + " images of class " + std::to_string(from) +
                " moved towards class " + std::to_string(to));
}

void run_similar(Session& s) {
  if (!s.comm.is_root()) return;
  const std::vector<int64_t> rows = index_list(s.vm["index"].as<std::string>());
  const int count = int_in(s.vm, "count", 1, 64);
  const float spread = static_cast<float>(scale_in_range(s.vm, "spread"));
  const vd::Shard shard = s.read(0, 1);
  const Rows r = gather_rows(shard, rows);
  const size_t D = static_cast<size_t>(shard.sample_size());
  vd::Rng rng(s.vm["seed"].as<uint64_t>());
  std::vector<float> images;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto row =
        vd::similar_row(s.ctx, s.vae(), r.x.data() + i * D, r.labels[i], count, spread, rng);
    images.insert(images.end(), row.begin(), row.end());
  }
  write_png(s, s.out(), images, static_cast<int>(rows.size()) * (count + 2), count + 2,
            std::to_string(rows.size()) + " rows: image, reconstruction, " + std::to_string(count) +
                " samples near it");
}

// The label a picture decodes with: --class for a conditional model, checked; else 0.
int32_t decode_class(const Session& s, int k, bool allow_all) {
  const int K = s.model->classes();
  if (K == 0) return 0;
  if ((allow_all && k == -1) || (k >= 0 && k < K)) return k;
  throw vd::ConfigError("--class: " + std::to_string(k) + " is not a class of this model (0.." +
                        std::to_string(K - 1) + ")");
}

// Codes [N, L] from --latent decoded into /mean [N, data shape] in the data's units, written
// by rank 0 to <out>.tmp and renamed.
void run_decode(Session& s) {
  if (!s.comm.is_root()) return;
  const std::string latent = s.vm["latent"].as<std::string>(), name = s.vm["z"].as<std::string>();
  if (!vd::h5::is_hdf5(latent))
    throw vd::IoError("--latent '" + latent +
                      "' is not a readable HDF5 file; give the file "
                      "vae_latent encode wrote");
  const vd::h5::File f = vd::h5::open_file(latent);
  if (!vd::h5::is_dataset(f, name))
    throw vd::DataError("--latent '" + latent + "' has no data set '" + name +
                        "'; name the codes with --z");
  const vd::h5::Array<float> z = vd::h5::read_dataset<float>(f, name);
  const int L = s.model->latent_dim();
  if (z.dims.size() != 2 || z.dims[1] != L)
    throw vd::DataError("--latent '" + latent + "' /" + name + " has shape " +
                        vd::shape_text(z.dims) + " but the model's codes are [N, " +
                        std::to_string(L) + "]");
  const int64_t n = z.dims[0];
  std::vector<int32_t> labels(static_cast<size_t>(n), 0);
  const int K = s.model->classes();
  if (K > 0) {
    const int k = s.vm["class"].as<int>();
    if (k >= 0) {
      std::fill(labels.begin(), labels.end(), decode_class(s, k, false));
    } else {
      if (!vd::h5::is_dataset(f, "labels"))
        throw vd::DataError("the model is conditional and --latent '" + latent +
                            "' has no /labels; give --class");
      labels = vd::h5::read_dataset<int32_t>(f, "labels").data;
      if (static_cast<int64_t>(labels.size()) != n)
        throw vd::DataError("--latent '" + latent + "' has " + std::to_string(labels.size()) +
                            " labels for " + std::to_string(n) + " codes");
      for (size_t i = 0; i < labels.size(); ++i)
        if (labels[i] < 0 || labels[i] >= K)
          throw vd::DataError("--latent '" + latent + "' has label " + std::to_string(labels[i]) +
                              " at row " + std::to_string(i) + ", outside the model's 0.." +
                              std::to_string(K - 1));
    }
  }
  std::vector<float> mean = vd::decode_rows(s.ctx, s.vae(), n, z.data.data(), labels.data());
  if (!s.model->scaling.empty()) s.model->scaling.invert(mean.data(), n);
  std::vector<int64_t> dims{n};
  const vd::Shape& shape = s.shape();
  for (int64_t d : shape.flat() ? std::vector<int64_t>{shape.size()} : shape.dims())
    dims.push_back(d);
  const std::string out = s.out();
  TempFile tmp(out + ".tmp");
  make_parent(out);
  {
    const vd::h5::File g = vd::h5::create_file(tmp.path());
    vd::h5::write_dataset<float>(g, "mean", mean, dims);
    if (K > 0) {
      const std::vector<int64_t> ld{n};
      vd::h5::write_dataset<int32_t>(g, "labels", labels, ld);
    }
  }
  std::error_code ec;
  fs::rename(tmp.path(), out, ec);
  if (ec)
    throw vd::IoError("cannot rename '" + tmp.path() + "' to '" + out + "': " + ec.message() +
                      "; choose another --out");
  tmp.keep();
  std::printf("wrote %s: /mean %s of the codes /%s of %s\n", out.c_str(),
              vd::shape_text(dims).c_str(), name.c_str(), latent.c_str());
}

void run_manifold(Session& s) {
  if (!s.comm.is_root()) return;
  const int n = int_in(s.vm, "size", 2, 64);
  const int32_t label = decode_class(s, s.vm["class"].as<int>(), false);
  const auto images = vd::manifold_images(s.ctx, s.vae(), n, label);
  write_png(s, s.out(), images, n * n, n,
            std::to_string(n) + " x " + std::to_string(n) + " decodings over the normal quantiles");
}

void run_sample(Session& s) {
  if (!s.comm.is_root()) return;
  const int g = int_in(s.vm, "size", 1, 32);
  const float temperature = static_cast<float>(scale_in_range(s.vm, "temperature"));
  const int32_t label = decode_class(s, s.vm["class"].as<int>(), true);
  const int K = s.model->classes();
  std::vector<int32_t> labels(static_cast<size_t>(g) * g);
  for (int i = 0; i < g * g; ++i) labels[static_cast<size_t>(i)] = label >= 0 ? label : (i / g) % K;
  vd::Rng rng(s.vm["seed"].as<uint64_t>());
  const auto images =
      vd::prior_samples(s.ctx, s.vae(), g * g, temperature, K > 0 ? labels.data() : nullptr, rng);
  char what[96];
  std::snprintf(what, sizeof what, "%d x %d prior samples at temperature %g", g, g, temperature);
  write_png(s, s.out(), images, g * g, g, what);
}

// Codes z = mu of every row of D, encoded by shard as `encode` does and gathered on every rank
// as their bit patterns (an exact sum: each rank fills its block, the others hold 0), then the
// metrics of vae/disentanglement on rank 0.
void run_disentanglement(Session& s) {
  const vd::Comm& comm = s.comm;
  vd::DisentanglementSettings set;
  const std::string list = s.vm["metrics"].as<std::string>();
  set.beta_vae = set.factor_vae = set.mig = set.sap = set.dci = false;
  for (size_t pos = 0; pos <= list.size();) {
    const size_t end = std::min(list.find(',', pos), list.size());
    const std::string m = list.substr(pos, end - pos);
    bool* flag = m == "beta_vae"     ? &set.beta_vae
                 : m == "factor_vae" ? &set.factor_vae
                 : m == "mig"        ? &set.mig
                 : m == "sap"        ? &set.sap
                 : m == "dci"        ? &set.dci
                                     : nullptr;
    if (!flag)
      throw vd::ConfigError("--metrics: '" + m +
                            "' is not a metric; use some of beta_vae, "
                            "factor_vae, mig, sap, dci, comma-separated");
    *flag = true;
    pos = end + 1;
  }
  const int train = int_in(s.vm, "train-points", 10, 1000000);
  const int test = int_in(s.vm, "test-points", 10, 1000000);
  set.mig_points = set.sap_train = set.dci_train = set.beta_vae_train = set.factor_vae_train =
      train;
  set.factor_vae_variance_points = train;
  set.sap_test = set.dci_test = set.beta_vae_eval = set.factor_vae_eval = test;
  set.beta_vae_batch = set.factor_vae_batch = int_in(s.vm, "group-size", 2, 10000);
  set.dci_alpha = nonnegative(s.vm, "dci-alpha");

  const vd::FactorTable factors = vd::read_factors(s.data);  // every rank: the same check
  const vd::Shard shard = s.read(comm.rank(), comm.size());
  if (factors.rows != shard.global_rows())
    throw vd::DataError("'" + s.data + "' has " + std::to_string(factors.rows) + " rows of " +
                        "/factors but " + std::to_string(shard.global_rows()) + " images");
  const int L = s.model->latent_dim();
  std::vector<float> mu(static_cast<size_t>(shard.rows()) * L);
  encode_shard(s, shard, int_in(s.vm, "batch-size", 1, 100000), mu.data(), nullptr);
  std::vector<int64_t> bits(static_cast<size_t>(shard.global_rows()) * L, 0);
  for (size_t i = 0; i < mu.size(); ++i) {
    uint32_t b;
    std::memcpy(&b, &mu[i], sizeof b);
    bits[static_cast<size_t>(shard.range().begin) * L + i] = b;
  }
  comm.allreduce_sum(bits);
  if (!comm.is_root()) return;

  vd::EncodedFactors data{shard.global_rows(), L,
                          factors.F,           std::vector<float>(bits.size()),
                          factors.values,      factors.sizes,
                          factors.names,       s.data};
  for (size_t i = 0; i < bits.size(); ++i) {
    const auto b = static_cast<uint32_t>(bits[i]);
    std::memcpy(&data.codes[i], &b, sizeof b);
  }
  const uint64_t seed = s.vm["seed"].as<uint64_t>();
  vd::DisentanglementReport r = vd::evaluate_disentanglement(data, set, seed);
  r.about = {{"checkpoint", s.model->path}, {"data", s.data}};
  std::string names;
  for (int k = 0; k < factors.F; ++k)
    names += (k ? ", " : "") + factors.names[k] + " " + std::to_string(factors.sizes[k]);
  std::printf(
      "disentanglement of %lld codes (latent-dim %d, z = mu) against the factors %s; "
      "seed %llu\n%s",
      static_cast<long long>(data.n), L, names.c_str(), static_cast<unsigned long long>(seed),
      vd::disentanglement_table(r).c_str());
  const std::string out = s.out(), tmp = out + ".tmp", json = vd::disentanglement_json(r);
  make_parent(out);
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  bool ok = f != nullptr && std::fwrite(json.data(), 1, json.size(), f) == json.size();
  if (f != nullptr) ok = std::fclose(f) == 0 && ok;
  std::error_code ec;
  if (ok) fs::rename(tmp, out, ec);
  if (!ok || ec) throw vd::IoError("cannot write '" + out + "'; choose another --out");
  std::printf("wrote %s\n", out.c_str());
}

// ---- score --------------------------------------------------------------------------------

// score's options, checked before anything is computed (usage errors: exit 2).
struct ScoreOptions {
  vd::ScoreSettings set;
  int batch = 1000;
  std::optional<std::vector<int64_t>> labels_normal;
  std::string anomalies;  // "" = none
  double fpr = 0.05;
  double val_fraction = 0;  // > 0: that share of D's normal rows is held out
  std::string val_file;     // else: a file of normal rows
};

// The held-out split's draw: vd::shuffle_permutation of D's normal rows with this stream's seed.
constexpr uint64_t kScoreSplitStream = 0x5c0e0002;

ScoreOptions score_options(const Session& s) {
  const po::variables_map& vm = s.vm;
  ScoreOptions o;
  o.set.iw_samples = int_in(vm, "iw-samples", 0, 100000);
  o.set.per_pixel = vm["per-pixel"].as<bool>();
  o.set.seed = vm["seed"].as<uint64_t>();
  o.batch = int_in(vm, "batch-size", 1, 100000);
  o.set.data_range = vm["data-range"].as<double>();
  if (!(o.set.data_range > 0) || !std::isfinite(o.set.data_range))
    throw vd::ConfigError("--data-range: " + std::to_string(o.set.data_range) +
                          " must be a number > 0 (1 for images in [0, 1])");
  const vd::Shape& shape = s.shape();
  o.set.image_quality =
      !shape.flat() && shape.rank == 2 && shape.h >= vd::kSsimWindow && shape.w >= vd::kSsimWindow;
  if (fs::path(s.out()).extension() == ".json")
    throw vd::ConfigError("--out '" + s.out() +
                          "' ends in .json, the name of the means beside it; give an HDF5 name "
                          "such as scores.h5");
  o.fpr = vm["fpr"].as<double>();
  if (!(o.fpr > 0 && o.fpr < 1))
    throw vd::ConfigError("--fpr: " + std::to_string(o.fpr) +
                          " is outside (0, 1); give a false-positive rate such as 0.05");
  if (vm.count("labels-normal") && vm.count("anomalies"))
    throw vd::ConfigError(
        "give either --labels-normal (the normal labels of D) or --anomalies (a file of known "
        "anomalies), not both");
  if (vm.count("labels-normal")) {
    const std::string text = vm["labels-normal"].as<std::string>();
    const auto list = vd::app::nonnegative_list(text);
    if (!list)
      throw vd::ConfigError("--labels-normal: '" + text +
                            "' is not a comma-separated list of labels >= 0 (e.g. 0,1,2)");
    o.labels_normal = *list;
  }
  if (vm.count("anomalies")) o.anomalies = vm["anomalies"].as<std::string>();
  const std::string val = vm["normal-val"].as<std::string>();
  double f = 0;
  const auto res = std::from_chars(val.data(), val.data() + val.size(), f);
  if (!val.empty() && res.ec == std::errc() && res.ptr == val.data() + val.size()) {
    if (!(f > 0 && f < 1))
      throw vd::ConfigError(
          "--normal-val: " + val +
          " is not a fraction in (0, 1); give e.g. 0.2, or a file of normal rows");
    o.val_fraction = f;
  } else {
    std::error_code ec;
    if (!fs::is_regular_file(val, ec))
      throw vd::ConfigError(
          "--normal-val: '" + val +
          "' is neither a fraction in (0, 1) nor an existing file of normal rows");
    o.val_file = val;
  }
  return o;
}

// Every row's scores of one file, gathered on rank 0 in the file's row order (the other ranks
// hold n = 0), and its labels.
struct ScoredFile {
  std::string path;
  vd::RowScores scores;
  bool has_labels = false;
  std::vector<int32_t> labels;
};

// Each rank scores its shard in batches over global rows [kB, (k+1)B) at full size B, as
// encode does, so every row's arithmetic is the same on any number of ranks; rank 0 gathers.
ScoredFile score_file(Session& s, const std::string& path, const ScoreOptions& o) {
  const vd::Comm& comm = s.comm;
  const vd::Shard shard = s.read_file(path, comm.rank(), comm.size());
  const int B = o.batch;
  const int D = static_cast<int>(shard.sample_size());
  const vd::RowRange range = shard.range();
  vd::RowScores mine;
  mine.resize(shard.rows(), D, o.set);
  std::vector<float> x(static_cast<size_t>(B) * D);
  std::vector<int32_t> labels(static_cast<size_t>(B), 0);
  std::vector<int64_t> rows;
  for (int64_t g = range.begin / B * B; g < range.end; g += B) {
    const int64_t lo = std::max(g, range.begin), hi = std::min(g + B, range.end);
    std::fill(x.begin(), x.end(), 0.0f);
    std::fill(labels.begin(), labels.end(), 0);
    rows.clear();
    for (int64_t r = lo; r < hi; ++r) rows.push_back(r - range.begin);
    shard.gather(rows, x.data() + static_cast<size_t>(lo - g) * D);
    if (shard.has_labels())
      for (int64_t r = lo; r < hi; ++r)
        labels[static_cast<size_t>(r - g)] = shard.labels()[static_cast<size_t>(r - range.begin)];
    vd::score_batch(s.ctx, s.vae(), B, x.data(), labels.data(), g, static_cast<int>(lo - g),
                    static_cast<int>(hi - g), o.set, &s.model->scaling, mine, lo - range.begin);
  }
  ScoredFile f;
  f.path = path;
  f.has_labels = shard.has_labels();
  vd::RowScores& all = f.scores;
  all.n = comm.is_root() ? shard.global_rows() : 0;
  all.D = D;
  for (auto [dst, src] : {std::pair{&all.neg_elbo, &mine.neg_elbo},
                          {&all.recon, &mine.recon},
                          {&all.kl, &mine.kl},
                          {&all.iw_nll, &mine.iw_nll},
                          {&all.recon_nll_mu, &mine.recon_nll_mu},
                          {&all.sq_error_mu, &mine.sq_error_mu},
                          {&all.psnr, &mine.psnr},
                          {&all.ssim, &mine.ssim}})
    *dst = comm.gather(std::span<const double>(*src), 0);
  all.pixel_loglik = comm.gather(std::span<const float>(mine.pixel_loglik), 0);
  if (f.has_labels) {
    std::vector<double> l(shard.labels().begin(), shard.labels().end());
    for (double v : comm.gather(std::span<const double>(l), 0))
      f.labels.push_back(static_cast<int32_t>(v));
  }
  return f;
}

// PSNR and SSIM grow with the reconstruction's quality: the ranking metrics use their negatives.
double score_sign(const std::string& name) {
  return name == "psnr" || name == "ssim" ? -1.0 : 1.0;
}

std::string score_what(const std::string& name, int k) {
  if (name == "neg_elbo") return "-ELBO, one z ~ q(z|x): recon + kl (nats)";
  if (name == "recon") return "-log p(x|z) at that z (nats)";
  if (name == "kl") return "KL(q(z|x) || p(z)) (nats)";
  if (name == "iw_nll") return "-log p(x), importance-weighted, k = " + std::to_string(k);
  if (name == "recon_nll_mu") return "-log p(x|z = mu) (nats)";
  if (name == "sq_error_mu") return "sum (x - E[x|z = mu])^2";
  if (name == "psnr") return "PSNR of E[x|z = mu] (dB)";
  if (name == "ssim") return "SSIM of E[x|z = mu] (7x7 uniform window)";
  return name;
}

std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

double mean_of(const std::vector<double>& v, const std::vector<uint8_t>* mask = nullptr,
               uint8_t which = 1) {
  double sum = 0, n = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (mask == nullptr || (*mask)[i] == which) {
      sum += v[i];
      n += 1;
    }
  return n > 0 ? sum / n : std::numeric_limits<double>::quiet_NaN();
}

void write_scores(hid_t loc, const ScoredFile& f, int k) {
  const int64_t n = f.scores.n;
  const int64_t dims[2] = {n, f.scores.D};
  for (const auto& [name, v] : f.scores.columns()) {
    vd::h5::write_dataset<double>(loc, name, *v, std::span<const int64_t>(dims, 1));
    vd::h5::Dataset d = vd::h5::open_dataset(loc, name);
    vd::h5::write_attribute(d, "what", score_what(name, k));
  }
  if (!f.scores.pixel_loglik.empty()) {
    vd::h5::write_dataset<float>(loc, "pixel_loglik", f.scores.pixel_loglik, dims);
    vd::h5::Dataset d = vd::h5::open_dataset(loc, "pixel_loglik");
    vd::h5::write_attribute(d, "what", "log p(x_d | z = mu) per feature (nats)");
  }
  if (f.has_labels)
    vd::h5::write_dataset<int32_t>(loc, "labels", f.labels, std::span<const int64_t>(dims, 1));
  vd::h5::write_attribute(loc, "data", f.path);
}

// --labels-normal against D's /labels, on every rank before anything is scored: D must have
// labels, and the list must name some but not all of them. Returns the list as text.
std::string check_labels_normal(const Session& s, const std::vector<int64_t>& normal) {
  std::vector<int32_t> labels;
  {
    vd::h5::File f = vd::h5::open_file(s.data);
    if (!vd::h5::is_dataset(f, "/labels"))
      throw vd::DataError("--labels-normal needs the labels of D, but '" + s.data +
                          "' has no /labels data set; give --anomalies FILE instead");
    labels = vd::h5::read_dataset<int32_t>(f, "/labels").data;
  }
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  std::string present, text;
  size_t named = 0;
  for (int32_t l : labels) {
    if (!present.empty()) present += ',';
    present += std::to_string(l);
    named += std::find(normal.begin(), normal.end(), l) != normal.end() ? 1 : 0;
  }
  for (int64_t l : normal) {
    if (!text.empty()) text += ',';
    text += std::to_string(l);
  }
  if (named == 0)
    throw vd::ConfigError("--labels-normal " + text + " names none of the labels of '" + s.data +
                          "' (" + present + "); name the normal ones");
  if (named == labels.size())
    throw vd::ConfigError("--labels-normal " + text + " names every label of '" + s.data + "' (" +
                          present +
                          "), so no row is a known anomaly; leave out the anomalous "
                          "labels");
  return text;
}

void run_score(Session& s) {
  const vd::Comm& comm = s.comm;
  const ScoreOptions o = score_options(s);
  const bool detect = o.labels_normal.has_value() || !o.anomalies.empty();
  if (o.labels_normal) check_labels_normal(s, *o.labels_normal);
  const ScoredFile data = score_file(s, s.data, o);
  std::optional<ScoredFile> anomalies, normal_val;
  if (!o.anomalies.empty()) anomalies = score_file(s, o.anomalies, o);
  if (detect && !o.val_file.empty()) normal_val = score_file(s, o.val_file, o);
  if (!comm.is_root()) return;
  const int k = o.set.iw_samples;
  const int64_t N = data.scores.n;

  // Known anomalies: D's rows whose label is not normal, or the rows of --anomalies.
  std::vector<uint8_t> anomalous(static_cast<size_t>(N), 0), held_out(static_cast<size_t>(N), 0);
  std::string normal_text;
  if (o.labels_normal) {
    for (int64_t i = 0; i < N; ++i)
      anomalous[static_cast<size_t>(i)] =
          std::find(o.labels_normal->begin(), o.labels_normal->end(),
                    data.labels[static_cast<size_t>(i)]) == o.labels_normal->end();
    normal_text = check_labels_normal(s, *o.labels_normal);
  }
  if (detect && o.val_fraction > 0) {
    std::vector<int64_t> normal_rows;
    for (int64_t i = 0; i < N; ++i)
      if (!anomalous[static_cast<size_t>(i)]) normal_rows.push_back(i);
    const auto nn = static_cast<int64_t>(normal_rows.size());
    const int64_t h = std::llround(o.val_fraction * static_cast<double>(nn));
    if (h < 1 || h >= nn)
      throw vd::DataError("--normal-val " + std::to_string(o.val_fraction) + " of the " +
                          std::to_string(nn) + " normal rows of '" + s.data + "' holds out " +
                          std::to_string(h) +
                          " rows; it must leave at least one on each side (give another "
                          "fraction or a file of normal rows)");
    const std::vector<int64_t> perm =
        vd::shuffle_permutation(nn, vd::Rng::derive_seed(o.set.seed, kScoreSplitStream));
    for (int64_t j = 0; j < h; ++j)
      held_out[static_cast<size_t>(
          normal_rows[static_cast<size_t>(perm[static_cast<size_t>(j)])])] = 1;
  }

  // The means, over every row of D, and over its normal and anomalous rows.
  std::string json = "{\n  \"checkpoint\": " + vd::json_string(s.model->path) +
                     ",\n  \"data\": " + vd::json_string(s.data) +
                     ",\n  \"rows\": " + std::to_string(N) +
                     ",\n  \"settings\": {\"seed\": " + std::to_string(o.set.seed) +
                     ", \"iw_samples\": " + std::to_string(k) +
                     ", \"per_pixel\": " + (o.set.per_pixel ? "true" : "false") +
                     ", \"data_range\": " + json_num(o.set.data_range) +
                     ", \"weights\": " + vd::json_string(vd::weights_name(s.model->weights)) +
                     ", \"batch_size\": " + std::to_string(o.batch) + "},\n  \"means\": {";
  std::printf("scored %lld rows of %s (seed %llu)\n", static_cast<long long>(N), s.data.c_str(),
              static_cast<unsigned long long>(o.set.seed));
  const bool split = o.labels_normal.has_value();
  std::printf("  %-14s %14s%s  %s\n", "score", "mean",
              split ? "         normal      anomalous" : "", "what");
  bool first = true;
  for (const auto& [name, v] : data.scores.columns()) {
    const double m = mean_of(*v);
    json += std::string(first ? "" : ", ") + "\"" + name + "\": " + json_num(m);
    first = false;
    std::printf("  %-14s %14.4f", name.c_str(), m);
    if (split)
      std::printf(" %14.4f %14.4f", mean_of(*v, &anomalous, 0), mean_of(*v, &anomalous, 1));
    std::printf("  %s\n", score_what(name, k).c_str());
  }
  json += "}";
  if (anomalies) {
    json += ",\n  \"anomalies\": {\"data\": " + vd::json_string(anomalies->path) +
            ", \"rows\": " + std::to_string(anomalies->scores.n) + ", \"means\": {";
    first = true;
    std::printf("means over the %lld rows of %s:\n", static_cast<long long>(anomalies->scores.n),
                anomalies->path.c_str());
    for (const auto& [name, v] : anomalies->scores.columns()) {
      json += std::string(first ? "" : ", ") + "\"" + name + "\": " + json_num(mean_of(*v));
      first = false;
      std::printf("  %-14s %14.4f\n", name.c_str(), mean_of(*v));
    }
    json += "}}";
  }

  if (detect) {
    // The evaluation rows: D's rows not held out, then the --anomalies rows; the held-out
    // normal rows: D's held-out ones, or the --normal-val file's.
    std::vector<uint8_t> flags;
    for (int64_t i = 0; i < N; ++i)
      if (!held_out[static_cast<size_t>(i)]) flags.push_back(anomalous[static_cast<size_t>(i)]);
    if (anomalies) flags.insert(flags.end(), static_cast<size_t>(anomalies->scores.n), 1);
    const auto positives = std::count(flags.begin(), flags.end(), uint8_t{1});
    const auto negatives = static_cast<int64_t>(flags.size()) - positives;
    if (positives == 0 || negatives == 0)
      throw vd::DataError("the evaluation rows hold " + std::to_string(positives) +
                          " known anomalies and " + std::to_string(negatives) +
                          " normal rows; ROC-AUC needs both");
    const int64_t held = normal_val ? normal_val->scores.n
                                    : std::count(held_out.begin(), held_out.end(), uint8_t{1});
    const std::string anomalies_text =
        o.labels_normal ? "labels not in " + normal_text : "the rows of " + o.anomalies;
    char share[32];
    std::snprintf(share, sizeof share, "%g", o.val_fraction);
    const std::string held_text =
        normal_val ? "the rows of " + normal_val->path
                   : std::string("held-out normal rows of D (") + share + " of them)";
    std::printf(
        "anomaly detection on %lld rows: %lld known anomalies (%s), %lld normal; threshold at "
        "FPR %g from %lld %s\n",
        static_cast<long long>(flags.size()), static_cast<long long>(positives),
        anomalies_text.c_str(), static_cast<long long>(negatives), o.fpr,
        static_cast<long long>(held), held_text.c_str());
    std::printf("  %-14s %8s %8s %14s %8s %8s\n", "score", "ROC-AUC", "AP", "threshold", "TPR",
                "FPR");
    json += ",\n  \"detection\": {\"evaluated_rows\": " + std::to_string(flags.size()) +
            ", \"anomalous\": " + std::to_string(positives) +
            ", \"normal\": " + std::to_string(negatives) +
            ", \"held_out_normal\": " + std::to_string(held) + ", \"fpr\": " + json_num(o.fpr) +
            ", \"anomalies\": " + vd::json_string(anomalies_text) +
            ", \"held_out\": " + vd::json_string(held_text) + ", \"scores\": {";
    const auto anomaly_columns =
        anomalies ? anomalies->scores.columns() : decltype(data.scores.columns()){};
    const auto val_columns =
        normal_val ? normal_val->scores.columns() : decltype(data.scores.columns()){};
    first = true;
    const auto columns = data.scores.columns();
    for (size_t c = 0; c < columns.size(); ++c) {
      const std::string& name = columns[c].first;
      const std::vector<double>& v = *columns[c].second;
      const double sign = score_sign(name);
      std::vector<double> eval, held_scores;
      for (int64_t i = 0; i < N; ++i)
        (held_out[static_cast<size_t>(i)] ? held_scores : eval)
            .push_back(sign * v[static_cast<size_t>(i)]);
      if (anomalies)
        for (double a : *anomaly_columns[c].second) eval.push_back(sign * a);
      if (normal_val)
        for (double a : *val_columns[c].second) held_scores.push_back(sign * a);
      const double auc = vd::roc_auc(eval, flags), ap = vd::average_precision(eval, flags);
      const double t = vd::threshold_at_fpr(held_scores, o.fpr);
      const double tpr = vd::rate_above(eval, flags, 1, t), fpr = vd::rate_above(eval, flags, 0, t);
      std::printf("  %-14s %8.4f %8.4f %s%13.4f %8.4f %8.4f\n", name.c_str(), auc, ap,
                  sign < 0 ? "<" : ">", sign * t, tpr, fpr);
      json += std::string(first ? "" : ",\n    ") + "\"" + name +
              "\": {\"roc_auc\": " + json_num(auc) + ", \"average_precision\": " + json_num(ap) +
              ", \"threshold\": " + json_num(sign * t) + ", \"flagged_when\": \"" +
              (sign < 0 ? "below" : "above") + "\", \"tpr\": " + json_num(tpr) +
              ", \"fpr\": " + json_num(fpr) + "}";
      first = false;
    }
    json += "}}";
  }
  json += "\n}\n";

  // The HDF5 file, under a temporary name until complete, and the JSON beside it.
  const std::string out = s.out();
  const std::string json_path = fs::path(out).replace_extension(".json").string();
  make_parent(out);
  TempFile tmp(out + ".tmp");
  {
    vd::h5::File f = vd::h5::create_file(tmp.path());
    write_scores(f, data, k);
    vd::h5::write_attribute(f, "checkpoint", s.model->path);
    vd::h5::write_attribute(f, "dataset", s.dataset);
    vd::h5::write_attribute(f, "weights", vd::weights_name(s.model->weights));
    vd::h5::write_attribute(f, "seed", o.set.seed);
    vd::h5::write_attribute(f, "iw_samples", int64_t{k});
    vd::h5::write_attribute(
        f, "likelihood",
        s.vae_likelihood() == vd::Likelihood::Bernoulli ? "bernoulli" : "gaussian");
    vd::h5::write_attribute(
        f, "noise",
        "row r: z = mu + sigma * eps, eps from vd::Rng(derive_seed(seed, 0x5c0e0000, r)); "
        "importance samples from vd::Rng(derive_seed(seed, 0x5c0e0001, r))");
    if (o.set.image_quality) {
      vd::h5::write_attribute(f, "data_range", o.set.data_range);
      vd::h5::write_attribute(f, "psnr",
                              "skimage.metrics.peak_signal_noise_ratio(x, E[x|z=mu], "
                              "data_range) over all C*H*W values, data units");
      vd::h5::write_attribute(f, "ssim",
                              "skimage.metrics.structural_similarity(x, E[x|z=mu], data_range, "
                              "channel_axis=0): 7x7 uniform window, K1 0.01, K2 0.03, sample "
                              "covariance, mean over channels, data units");
    }
    const int64_t dims[1] = {N};
    if (detect) {
      vd::h5::write_dataset<uint8_t>(f, "anomalous", anomalous, dims);
      vd::h5::write_dataset<uint8_t>(f, "held_out", held_out, dims);
      vd::h5::write_attribute(f, "fpr", o.fpr);
      if (o.labels_normal) vd::h5::write_attribute(f, "labels_normal", normal_text);
      vd::h5::write_attribute(f, "normal_val", s.vm["normal-val"].as<std::string>());
    }
    if (anomalies) {
      vd::h5::Group g = vd::h5::create_group(f, "anomalies");
      write_scores(g, *anomalies, k);
    }
    if (normal_val) {
      vd::h5::Group g = vd::h5::create_group(f, "normal_val");
      write_scores(g, *normal_val, k);
    }
  }
  std::error_code ec;
  fs::rename(tmp.path(), out, ec);
  if (ec)
    throw vd::IoError("cannot rename '" + tmp.path() + "' to '" + out + "': " + ec.message() +
                      "; choose another --out");
  tmp.keep();
  const std::string json_tmp = json_path + ".tmp";
  std::FILE* jf = std::fopen(json_tmp.c_str(), "w");
  bool ok = jf != nullptr && std::fwrite(json.data(), 1, json.size(), jf) == json.size();
  if (jf != nullptr) ok = std::fclose(jf) == 0 && ok;
  if (ok) fs::rename(json_tmp, json_path, ec);
  if (!ok || ec) throw vd::IoError("cannot write '" + json_path + "'; choose another --out");
  std::printf("wrote %s and %s\n", out.c_str(), json_path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--version") {
    vd::app::print_once(vd::version_text("vae_latent"));
    return 0;
  }
  const Subcommand* sub = nullptr;
  try {
    sub = find_subcommand(argc, argv);
  } catch (const vd::ConfigError& e) {
    vd::app::usage_error(std::string(e.what()) + " (see vae_latent --help)");
  }
  if (sub == nullptr) {
    vd::app::print_once(top_help());
    return 0;
  }
  const std::string see = " (see vae_latent " + sub->name + " --help)";
  bool help = false;
  po::variables_map vm;
  try {
    vm = parse_options(*sub, argc, argv, help);
  } catch (const vd::ConfigError& e) {
    vd::app::usage_error(e.what() + see);
  }
  if (help) {
    vd::app::print_once(sub_help(*sub));
    return 0;
  }
  return vd::app::run_with_mpi(&argc, &argv, see, [&](const vd::Comm& comm) {
    const std::string& name = sub->name;
    // Every subcommand but arithmetic (whose --out is a directory) writes one file.
    if (name != "arithmetic")
      check_file_out(vm["out"].as<std::string>(), name == "encode"   ? "latents.h5"
                                                  : name == "decode" ? "decoded.h5"
                                                  : name == "score"  ? "scores.h5"
                                                                     : "grid.png");
    Session s(comm, vm);
    if (name == "encode") run_encode(s);
    if (name == "decode") run_decode(s);
    if (name == "interpolate") run_interpolate(s);
    if (name == "arithmetic") run_arithmetic(s);
    if (name == "similar") run_similar(s);
    if (name == "manifold") run_manifold(s);
    if (name == "sample") run_sample(s);
    if (name == "disentanglement") run_disentanglement(s);
    if (name == "score") run_score(s);
    std::fflush(stdout);
    return 0;
  });
}
