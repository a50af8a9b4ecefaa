// The model a run's options describe, and a trained model loaded back from a checkpoint:
// what the Trainer and vae_latent share, so both build the same model from the same settings.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "config/options.hpp"
#include "data/shard.hpp"
#include "data/standardize.hpp"
#include "io/checkpoint.hpp"
#include "nn/param_store.hpp"
#include "parallel/comm.hpp"
#include "vae/latent_model.hpp"

namespace vd {

// The model's likelihood for the one --likelihood names.
inline Likelihood model_likelihood(DecoderLikelihood l) {
  return l == DecoderLikelihood::Gaussian ? Likelihood::Gaussian : Likelihood::Bernoulli;
}

// One sample's shape as the model sees it: C x H x W for 4-D data, D for 2-D data.
Shape data_shape_of(const Shard& shard);

// The model the options describe for data of one sample's shape `data`: the MLP of --hidden
// unless --encoder/--decoder give layer lists, conditional on `classes` (0 = not).
ModelConfig model_config(const Options& opt, const Shape& data, int classes);

// The same, shaped by the training data: a conditional model's classes are --classes, or the
// largest label of the training shards (over every rank) + 1; the test and validation labels
// (`test`, `val`: null when there are none) must lie among them. Throws vd::DataError when
// --conditional meets data without labels or with labels outside the classes (check_labels).
// Collective when opt.conditional and comm has several ranks.
ModelConfig model_config(const Options& opt, const Shard& train, const Shard* test,
                         const Comm& comm, const Shard* val = nullptr);

// Throws vd::DataError naming the file, the row (of the file), the label and the class count for
// the first label of this rank's shard outside 0..classes-1. `role`: "test data", ...;
// `counted`: where the class count came from ("--classes 10", "the training labels of 'F'").
void check_labels(const Shard& shard, int classes, const std::string& role,
                  const std::string& counted);

// The one shape rule for data given to a model: the shard's samples must have the shape `want`
// (the training data's, or a checkpoint's model input), not merely as many values. Throws
// vd::DataError "the <role> '<file>' has samples of shape [..] but <against> [..]; <advice>".
void check_sample_shape(const Shard& shard, const Shape& want, const std::string& role,
                        const std::string& against, const std::string& advice);
// "[1, 28, 28]", "[784]": a sample shape as the data file holds it.
std::string sample_shape_text(const Shape& shape);

// A trained model: the options of the run that wrote the checkpoint, and its parameters.
struct TrainedModel {
  std::string path;  // the checkpoint
  Options options;   // the run's resolved configuration, as stored
  CheckpointMeta meta;
  ParamStore store;
  std::unique_ptr<LatentModel> model;
  // --standardize: the model's inputs and outputs are standardised; these statistics map
  // data to the model (standardize) and its outputs back (invert). Empty otherwise.
  FeatureScaling scaling;
  // The weights in `store`: the optimizer's, or the moving average the run kept.
  Weights weights = Weights::Raw;
  // "the moving average's weights (decay 0.999, 4690 updates) of C, as the run evaluated" when
  // the checkpoint holds a moving average, whichever weights were taken; "" otherwise.
  std::string weights_note;
  int latent_dim() const { return model->config().latent_dim; }
  int classes() const { return model->config().classes; }
};

// Loads any vae_dist checkpoint. The architecture comes from its stored configuration; the
// data shape and classes from the checkpoint, or (older checkpoints) from the training and
// test files its configuration names, read as the Trainer read them. Every rank reads the
// file. `weights` picks the optimizer's weights or the moving average (--ema-decay); nullopt
// takes the ones the run evaluated (the checkpoint's eval_weights). Throws
// vd::IoError/vd::ShapeError/vd::ConfigError naming the checkpoint, and vd::ConfigError when
// the moving average is asked for and the checkpoint has none.
std::unique_ptr<TrainedModel> load_trained_model(const std::string& checkpoint, const Comm& comm,
                                                 std::optional<Weights> weights = std::nullopt);

}  // namespace vd
