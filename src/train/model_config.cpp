// Building the ModelConfig from a run's options and data, and loading a trained model from a
// checkpoint's stored configuration and parameters.
#include "train/model_config.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <sstream>
#include <vector>

#include "core/error.hpp"
#include "train/run_messages.hpp"
#include "vae/architecture.hpp"
#include "vae/models.hpp"

namespace vd {

Shape data_shape_of(const Shard& shard) {
  return Shape::from_dims(shard.sample_shape());
}

ModelConfig model_config(const Options& opt, const Shape& data, int classes) {
  ModelConfig vc;
  vc.data = data;
  vc.latent_dim = opt.latent_dim;
  if (!opt.latent_shape.empty()) {
    // The option's parser checked the form and set latent_dim.
    parse_shape_text(opt.latent_shape, vc.latent);
  } else {
    vc.latent = Shape{opt.latent_dim, 1, 1};
  }
  vc.likelihood = model_likelihood(opt.likelihood);
  vc.gaussian_sigma = static_cast<float>(opt.gaussian_sigma);
  vc.iw_train_samples = opt.train_iw_samples;
  vc.output_variance = opt.decoder_variance == DecoderVariance::Learned
                           ? ModelConfig::OutputVariance::Learned
                       : opt.decoder_variance == DecoderVariance::LearnedPerOutput
                           ? ModelConfig::OutputVariance::LearnedPerOutput
                           : ModelConfig::OutputVariance::Fixed;
  vc.encoder = opt.encoder.empty() ? mlp_encoder_spec(opt.hidden) : opt.encoder;
  vc.decoder = opt.decoder.empty() ? mlp_decoder_spec(opt.hidden, data.size()) : opt.decoder;
  vc.classes = classes;
  vc.logvar_min = static_cast<float>(opt.logvar_min);
  vc.logvar_max = static_cast<float>(opt.logvar_max);
  vc.free_bits = opt.free_bits;
  vc.model = opt.model;
  find_model_family(vc.model).check(vc);
  if (vc.iw_train_samples > 1 && (opt.beta != 1 || opt.kl_warmup_epochs > 0 ||
                                  opt.kl_schedule == KlScheduleKind::Cyclical || opt.free_bits > 0))
    throw ConfigError(
        "--model " + vc.model + " with --train-iw-samples " + std::to_string(vc.iw_train_samples) +
        " trains on the importance-weighted bound, which has no KL weight: --beta must be 1, "
        "with no --kl-warmup-epochs, cyclical --kl-schedule or --free-bits; drop those or use "
        "--train-iw-samples 1");
  return vc;
}

ModelConfig model_config(const Options& opt, const Shard& train, const Shard* test,
                         const Comm& comm, const Shard* val) {
  int classes = 0;
  if (opt.conditional) {
    for (const Shard* sh : {&train, test, val}) {
      if (sh && !sh->has_labels())
        throw DataError("--conditional needs class labels, but '" + sh->file() +
                        "' has no /labels data set; add one (integer [N]) or drop --conditional");
    }
    // The classes come from the training labels alone: a test or validation label beyond them
    // is an error in that file, never a larger model.
    int64_t top = -1;
    for (int32_t l : train.labels()) {
      if (l < 0)
        throw DataError("'" + train.file() + "' has a negative label (" + std::to_string(l) +
                        "); a conditional model needs labels 0..K-1");
      top = std::max<int64_t>(top, l);
    }
    top = comm.size() > 1 ? comm.allreduce_max(top) : top;
    classes = opt.classes > 0 ? opt.classes : static_cast<int>(top + 1);
    if (top >= classes)
      throw DataError("the data have label " + std::to_string(top) + " but --classes is " +
                      std::to_string(opt.classes) + "; raise --classes or set it to 0 (automatic)");
    const std::string counted = opt.classes > 0 ? "--classes " + std::to_string(opt.classes)
                                                : "the training labels of '" + train.file() + "'";
    if (test) check_labels(*test, classes, "test data", counted);
    if (val) check_labels(*val, classes, "validation data", counted);
  }
  ModelConfig vc = model_config(opt, data_shape_of(train), classes);
  vc.dataset_rows = train.global_rows();
  return vc;
}

void check_labels(const Shard& shard, int classes, const std::string& role,
                  const std::string& counted) {
  const std::span<const int32_t> labels = shard.labels();
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw DataError("the " + role + " '" + shard.file() + "' has label " +
                      std::to_string(labels[i]) + " at row " +
                      std::to_string(shard.range().begin + static_cast<int64_t>(i)) +
                      ", but the model has " + std::to_string(classes) + " classes (0.." +
                      std::to_string(classes - 1) + ", from " + counted +
                      "); fix or drop that row, or give --classes above its label");
}

void check_sample_shape(const Shard& shard, const Shape& want, const std::string& role,
                        const std::string& against, const std::string& advice) {
  if (data_shape_of(shard) == want) return;
  throw DataError("the " + role + " '" + shard.file() + "' has samples of shape " +
                  shape_text(shard.sample_shape()) + " but " + against + " " +
                  sample_shape_text(want) + "; " + advice);
}

std::string sample_shape_text(const Shape& shape) {
  const std::vector<int64_t> dims =
      shape.flat() ? std::vector<int64_t>{shape.size()} : shape.dims();
  return shape_text(dims);
}

std::unique_ptr<TrainedModel> load_trained_model(const std::string& checkpoint, const Comm& comm,
                                                 std::optional<Weights> weights) {
  auto m = std::make_unique<TrainedModel>();
  m->path = checkpoint;
  if (!std::filesystem::is_regular_file(checkpoint))
    throw IoError("checkpoint '" + checkpoint +
                  "' does not exist; give a checkpoint_stepNNNNNNNNN.h5 that vae_dist wrote");
  m->meta = read_checkpoint_meta(checkpoint);
  const bool has_ema = m->meta.ema_decay > 0;
  m->weights = weights.value_or(m->meta.eval_weights);
  if (m->weights == Weights::Ema && !has_ema)
    throw ConfigError("checkpoint '" + checkpoint +
                      "' holds no moving average of the weights (its run had no --ema-decay); "
                      "use --weights raw");
  m->scaling = m->meta.scaling;
  m->options = parse_config_text(m->meta.config_ini, "checkpoint '" + checkpoint + "' /config");
  const Options& opt = m->options;
  ModelConfig vc;
  if (!m->meta.data_shape.empty()) {
    vc = model_config(opt, Shape::from_dims(m->meta.data_shape), static_cast<int>(m->meta.classes));
  } else {
    // Written before checkpoints kept the data shape: derive it as the Trainer did.
    if (!std::filesystem::exists(opt.data))
      throw IoError("checkpoint '" + checkpoint +
                    "' does not record its data shape, and the training file it names ('" +
                    opt.data + "') is not here; run from the directory the training ran in");
    // The shape and labels only: streamed shards leave the rows in the files.
    const ValueCheck none = ValueCheck::None;
    const Residency lazy = Residency::Streamed;
    const Shard train =
        Shard::read(opt.data, opt.dataset, comm.rank(), comm.size(), none, std::nullopt, lazy);
    std::optional<Shard> test;
    if (opt.conditional && !opt.test_data.empty())
      test = Shard::read(opt.test_data, opt.dataset, comm.rank(), comm.size(), none, std::nullopt,
                         lazy);
    vc = model_config(opt, train, test ? &*test : nullptr, comm);
  }
  m->model = make_model(vc, m->store);
  m->store.finalize();
  // The Adam moments are read (read_checkpoint checks them) and dropped.
  std::vector<float> exp_avg(m->store.size()), exp_avg_sq(m->store.size());
  std::vector<float> average(has_ema ? m->store.size() : 0);
  read_checkpoint(checkpoint, m->store, exp_avg, exp_avg_sq, average);
  if (m->weights == Weights::Ema)
    std::copy(average.begin(), average.end(), m->store.params().begin());
  if (has_ema) {
    const bool as_run = m->weights == m->meta.eval_weights;
    m->weights_note =
        (m->weights == Weights::Ema
             ? "the moving average's weights (decay " + number_text(m->meta.ema_decay) + ", " +
                   std::to_string(m->meta.ema_updates) + " updates)"
             : std::string("the optimizer's weights (not the moving average)")) +
        " of " + checkpoint +
        (as_run ? ", as the run evaluated" : ", not the ones the run evaluated");
  }
  return m;
}

}  // namespace vd
