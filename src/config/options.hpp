// Options: every run setting in one struct, parsed from the command line and an INI file.
// One option table drives parsing, --help and format_options, so they cannot drift apart.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "optim/ema.hpp"
#include "optim/lr_schedule.hpp"

namespace vd {

// Field order matches the project brief so designated initialisers keep working.
// --stream: where the data live. Auto streams them when they exceed --data-memory-mb.
enum class StreamMode { Auto, Always, Never };
// "auto" | "always" | "never", as --stream spells it.
const char* stream_mode_name(StreamMode mode);
// --on-divergence: what a diverged run does. Rollback reloads the newest healthy checkpoint
// (or the initial parameters) with a lower learning rate, up to --max-rollbacks times.
enum class DivergenceAction { Stop, Rollback };
// --likelihood, --kl-schedule, --precision as parsed. The model's own Likelihood
// (vae/model.hpp) and Precision (nn/precision.hpp) are derived from them where the model is
// configured (train/model_config, nn's resolve_precision).
enum class DecoderLikelihood { Bernoulli, Gaussian };
const char* likelihood_name(DecoderLikelihood l);  // "bernoulli" | "gaussian"
enum class KlScheduleKind { Linear, Cyclical };
enum class PrecisionChoice { F32, BF16, Auto };
// --gaussian-sigma: a fixed decoder standard deviation, or a learned variance, one for all
// outputs or one per output.
enum class DecoderVariance { Fixed, Learned, LearnedPerOutput };
const char* precision_choice_name(PrecisionChoice p);  // "f32" | "bf16" | "auto"

struct Options {
  std::string config;                                    // INI file read with --config ("" = none)
  std::string data = "data/fashion-mnist/train.h5";      // training HDF5 file
  std::string test_data = "data/fashion-mnist/test.h5";  // "" = no evaluation
  std::string dataset = "/images";                       // data set name inside the HDF5 files
  std::string out = "runs/default";                      // run directory
  DecoderLikelihood likelihood = DecoderLikelihood::Bernoulli;
  std::string resume;  // checkpoint path, "latest" or ""
  int epochs = 10;
  int batch_size = 128;  // per rank
  int latent_dim = 20;
  std::string latent_shape;  // "CxHxW": a spatial latent (sets latent_dim); "" = flat
  int threads = 0;           // OpenMP threads per rank, 0 = automatic
  int log_every = 100;
  int eval_batch_size = 1000;
  int grid_size = 8;
  int iw_samples = 0;        // 0 = no IWAE estimate
  int train_iw_samples = 0;  // --model iwae: samples of the bound it trains on; 0 = its default
  int checkpoint_every = 1;  // epochs, 0 = only at the end
  int keep_checkpoints = 3;
  int checksum_every = 1000;        // steps, 0 = only at start
  std::vector<int> hidden = {400};  // encoder widths; the decoder mirrors them
  double lr = 1e-3;
  double gaussian_sigma = 1.0;  // the fixed sigma (and 1, the start of a learned one)
  DecoderVariance decoder_variance = DecoderVariance::Fixed;
  double beta = 1.0;
  double kl_warmup_epochs = 0.0;
  double weight_decay = 0.0;
  double grad_clip = 0.0;  // max global L2 norm of the summed gradient; 0 = off
  // The update guard (optim/update_guard.hpp): robust deviations that flag a step (0 = off),
  // the healthy steps it compares with, and flagged steps in a row that make a divergence.
  double spike_threshold = 12.0;
  int spike_window = 200;
  int max_skips = 20;
  DivergenceAction on_divergence = DivergenceAction::Stop;
  int max_rollbacks = 3;
  double rollback_lr_factor = 0.1;
  int rollback_skip_steps = 0;  // batches passed over after a rollback, up to the failed step
  // The moving average of the weights (optim/ema.hpp): its decay (0 = none) and the weights
  // validation, test, IWAE, the grids and best.h5 use.
  double ema_decay = 0.0;
  bool ema_warmup = true;
  Weights eval_weights = Weights::Raw;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  uint64_t seed = 1;
  int64_t max_steps = 0;  // 0 = no limit
  bool progress = true;
  std::string model = "vae";  // the model family (vae/models.hpp)
  // Layer lists (vae/architecture.hpp); empty = the MLP given by `hidden`.
  std::string encoder;
  std::string decoder;
  bool conditional = false;  // condition encoder and decoder on the one-hot /labels
  int classes = 0;           // classes of a conditional model; 0 = max label + 1 of the data
  // Learning-rate schedule (optim/lr_schedule.hpp), on the global optimizer step.
  LrScheduleKind lr_schedule = LrScheduleKind::Constant;
  int64_t lr_warmup_steps = 0;  // linear warm-up steps
  int64_t lr_step_size = 1000;  // step: steps between reductions
  double lr_gamma = 0.1;        // step: factor per reduction
  double lr_min = 0.0;          // cosine's end, plateau's floor
  double lr_factor = 0.1;       // plateau: factor per reduction
  int lr_patience = 10;         // plateau: bad evaluations before a reduction
  double lr_threshold = 1e-4;   // plateau: relative improvement that counts
  int lr_cooldown = 0;          // plateau: evaluations ignored after a reduction
  RankScaling lr_scale_with_ranks = RankScaling::None;
  // Validation: a held-out tail of the training file, or a file of its own; early stopping.
  double val_fraction = 0.0;    // 0 = none
  std::string val_data;         // "" = none
  int early_stop_patience = 0;  // evaluations without improvement; 0 = off
  // The KL term and the encoder's log-variance (docs/training.md: KL schedules, free bits, logvar
  // clamp and standardised data).
  KlScheduleKind kl_schedule = KlScheduleKind::Linear;  // linear: kl_warmup_epochs
  int kl_cycles = 4;                                    // cyclical: cycles over the planned steps
  double kl_cycle_ratio = 0.5;  // cyclical: share of a cycle over which beta ramps up
  double free_bits = 0.0;       // KL floor per latent dimension, nats; 0 = off
  double logvar_min = -30.0;    // logvar clamped to [logvar_min, logvar_max];
  double logvar_max = 20.0;     // -inf, +inf ("none") = off
  bool standardize = false;     // float data: per-feature mean 0, std 1
  // Streaming (docs/data.md: Data larger than memory): the data held in memory per rank, in MB,
  // above which the shards are streamed from the file (0 = auto), and the read-ahead window.
  StreamMode stream = StreamMode::Auto;
  int64_t data_memory_mb = 0;
  int64_t stream_window_mb = 128;

  // Compute precision of the layers: "f32" | "bf16" | "auto" (nn/precision.hpp).
  PrecisionChoice precision = PrecisionChoice::F32;

  // A fresh run's starting parameters from an HDF5 file of /params/<name> (io/checkpoint.hpp's
  // read_weights) instead of the seed's draw; --resume ignores it. "" = drawn from the seed.
  std::string init_weights;

  friend bool operator==(const Options&, const Options&) = default;
};

struct ParseResult {
  Options options;
  bool help = false;      // --help was given: print help_text and exit successfully
  std::string help_text;  // filled only when help is true
};

// Parses argv (argv[0] is the program name). Precedence: command line, then the --config
// file, then the defaults above. Throws vd::ConfigError naming the offending key.
// With --help nothing else is read or checked.
ParseResult parse_options(int argc, const char* const argv[]);

// Options from the text of a configuration file (format_options' output, e.g. the copy a
// checkpoint keeps), over the defaults; `origin` names the text in errors. Throws vd::ConfigError.
Options parse_config_text(const std::string& text, const std::string& origin);

// The resolved configuration as "key = value" lines (every option), re-parsable by --config.
// The config key itself is written as a comment: a config file cannot name another one.
std::string format_options(const Options& options);

// Checks what no single key can: options that need or exclude each other (validation data
// for early stopping, --val-fraction and --val-data together, --standardize with the
// Bernoulli likelihood). Throws vd::ConfigError naming them and what to change. parse_options
// calls it; so does the Trainer, for Options built in code.
void check_option_combinations(const Options& options);

// The --help text (also returned in ParseResult::help_text); program names the binary.
std::string help_text(const std::string& program = "vae_dist");

}  // namespace vd
