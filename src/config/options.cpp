// The option table and the parser built on it: Boost.Program_options tokenises the command
// line and the INI file; values are converted and range-checked here so every error names its key.
#include "config/options.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "nn/shape.hpp"

namespace vd {

namespace po = boost::program_options;

namespace {

// One row of the option table. `where` in set() is the label errors start with:
// "--epochs" for the command line, "file.cfg: epochs" for the INI file.
struct Spec {
  std::string name;
  std::string value_name;  // shown in --help, e.g. "<int>"
  std::string help;        // what it does and its allowed values
  bool in_file = true;     // false: command line only (config)
  std::function<void(Options&, const std::string& value, const std::string& where)> set;
  std::function<std::string(const Options&)> get;
};

std::string in_quotes(const std::string& s) {
  return "'" + s + "'";
}

std::string format_double(double v) {
  // Shortest text that reads back to the same double, so format_options round-trips exactly.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

template <class T>
Spec integer_spec(std::string name, T Options::*field, T lo, std::optional<T> hi,
                  std::string help) {
  std::string range;
  if (hi) {
    range = "an integer in " + std::to_string(lo) + ".." + std::to_string(*hi);
  } else if (lo == std::numeric_limits<T>::min()) {
    range = "an integer";
  } else {
    range = "an integer >= " + std::to_string(lo);
  }
  Spec s;
  s.name = name;
  s.value_name = "<int>";
  s.help = help + "; " + range;
  s.set = [field, lo, hi, range](Options& o, const std::string& value, const std::string& where) {
    T v{};
    const char* first = value.data();
    const char* last = first + value.size();
    const auto res = std::from_chars(first, last, v);
    if (res.ec == std::errc::result_out_of_range) {
      throw ConfigError(where + ": " + in_quotes(value) + " is out of range; it must be " + range +
                        " (at most " + std::to_string(std::numeric_limits<T>::max()) + ")");
    }
    if (res.ec != std::errc() || res.ptr != last || value.empty()) {
      throw ConfigError(where + ": " + in_quotes(value) + " is not an integer; it must be " +
                        range);
    }
    if (v < lo || (hi && v > *hi)) {
      throw ConfigError(where + ": " + value + " is out of range; it must be " + range);
    }
    o.*field = v;
  };
  s.get = [field](const Options& o) { return std::to_string(o.*field); };
  return s;
}

// A real bound; `strict` makes it exclusive.
struct Bound {
  double value;
  bool strict;
};

Spec real_spec(std::string name, double Options::*field, Bound lo, std::optional<Bound> hi,
               std::string help) {
  std::string range;
  if (hi) {
    range = "a number in " + std::string(lo.strict ? "(" : "[") + format_double(lo.value) + ", " +
            format_double(hi->value) + (hi->strict ? ")" : "]");
  } else {
    range = "a number " + std::string(lo.strict ? "> " : ">= ") + format_double(lo.value);
  }
  Spec s;
  s.name = name;
  s.value_name = "<num>";
  s.help = help + "; " + range;
  s.set = [field, lo, hi, range](Options& o, const std::string& value, const std::string& where) {
    double v = 0;
    const char* first = value.data();
    const char* last = first + value.size();
    const auto res = std::from_chars(first, last, v);
    if (res.ec == std::errc::result_out_of_range) {
      throw ConfigError(where + ": " + in_quotes(value) + " is out of range; it must be " + range);
    }
    if (res.ec != std::errc() || res.ptr != last || value.empty() || !std::isfinite(v)) {
      throw ConfigError(where + ": " + in_quotes(value) + " is not a finite number; it must be " +
                        range);
    }
    const bool below = lo.strict ? !(v > lo.value) : !(v >= lo.value);
    const bool above = hi && (hi->strict ? !(v < hi->value) : !(v <= hi->value));
    if (below || above) {
      throw ConfigError(where + ": " + value + " is out of range; it must be " + range);
    }
    o.*field = v;
  };
  s.get = [field](const Options& o) { return format_double(o.*field); };
  return s;
}

Spec string_spec(std::string name, std::string Options::*field, bool allow_empty,
                 std::vector<std::string> choices, std::string help) {
  Spec s;
  s.name = name;
  s.value_name = "<str>";
  if (!choices.empty()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : "|") + c;
    s.value_name = "<" + list + ">";
    help += "; one of " + list;
  }
  s.help = help;
  s.set = [field, allow_empty, choices](Options& o, const std::string& value,
                                        const std::string& where) {
    if (!allow_empty && value.empty()) {
      throw ConfigError(where + ": the value must not be empty");
    }
    if (!choices.empty() && std::find(choices.begin(), choices.end(), value) == choices.end()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      throw ConfigError(where + ": " + in_quotes(value) + " is not one of " + list);
    }
    o.*field = value;
  };
  s.get = [field](const Options& o) { return o.*field; };
  return s;
}

// An option of a fixed set of named values, held as the enum E; --help lists the names.
template <class E>
Spec choice_spec(std::string name, E Options::*field,
                 std::vector<std::pair<std::string, E>> choices, std::string help) {
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : "|") + c.first;
  Spec s;
  s.name = name;
  s.value_name = "<" + list + ">";
  s.help = help + "; one of " + list;
  s.set = [field, choices](Options& o, const std::string& value, const std::string& where) {
    for (const auto& c : choices)
      if (c.first == value) {
        o.*field = c.second;
        return;
      }
    std::string names;
    for (const auto& c : choices) names += (names.empty() ? "" : ", ") + c.first;
    if (value.empty()) throw ConfigError(where + ": the value must not be empty");
    throw ConfigError(where + ": " + in_quotes(value) + " is not one of " + names);
  };
  s.get = [field, choices](const Options& o) {
    for (const auto& c : choices)
      if (c.second == o.*field) return c.first;
    return std::string();
  };
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Spec bool_spec(std::string name, bool Options::*field, std::string help) {
  Spec s;
  s.name = name;
  s.value_name = "<bool>";
  s.help = help + "; true|false (a bare --" + name + " means true)";
  s.set = [field](Options& o, const std::string& value, const std::string& where) {
    const std::string v = lower(value);
    if (v == "true" || v == "yes" || v == "on" || v == "1") {
      o.*field = true;
    } else if (v == "false" || v == "no" || v == "off" || v == "0") {
      o.*field = false;
    } else {
      throw ConfigError(where + ": " + in_quotes(value) + " is not a boolean; use true or false");
    }
  };
  s.get = [field](const Options& o) { return std::string(o.*field ? "true" : "false"); };
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

Spec hidden_spec() {
  Spec s;
  s.name = "hidden";
  s.value_name = "<w1,w2,...>";
  s.help = "encoder hidden-layer widths, comma-separated (e.g. 512,256); the decoder mirrors them";
  s.set = [](Options& o, const std::string& value, const std::string& where) {
    const std::string bad = where + ": " + in_quotes(value) +
                            " is not a comma-separated list of integers >= 1 (e.g. 512,256)";
    std::vector<int> widths;
    std::stringstream in(value);
    std::string item;
    while (std::getline(in, item, ',')) {
      item = trim(item);
      int w = 0;
      const auto res = std::from_chars(item.data(), item.data() + item.size(), w);
      if (item.empty() || res.ec != std::errc() || res.ptr != item.data() + item.size() || w < 1) {
        throw ConfigError(bad);
      }
      widths.push_back(w);
    }
    // getline drops a trailing empty item, so "512," needs its own check.
    if (widths.empty() || value.back() == ',') throw ConfigError(bad);
    o.hidden = std::move(widths);
  };
  s.get = [](const Options& o) {
    std::string out;
    for (size_t i = 0; i < o.hidden.size(); ++i) {
      if (i > 0) out += ',';
      out += std::to_string(o.hidden[i]);
    }
    return out;
  };
  return s;
}

// --logvar-clamp "LO,HI" (finite, LO < HI) or "none" (stored as -inf, +inf).
Spec logvar_clamp_spec() {
  Spec s;
  s.name = "logvar-clamp";
  s.value_name = "<lo,hi|none>";
  s.help =
      "clamp the encoder's log-variance to [lo, hi] in the forward pass; the gradient is "
      "exact inside and zero outside (docs/training.md); 'none' = off; two numbers lo < hi, or "
      "none";
  s.set = [](Options& o, const std::string& value, const std::string& where) {
    if (trim(value) == "none") {
      o.logvar_min = -std::numeric_limits<double>::infinity();
      o.logvar_max = std::numeric_limits<double>::infinity();
      return;
    }
    const std::string bad = where + ": " + in_quotes(value) +
                            " is not a range 'lo,hi' of two finite numbers with lo < hi (e.g. "
                            "-30,20) or 'none'";
    const auto comma = value.find(',');
    if (comma == std::string::npos) throw ConfigError(bad);
    double v[2] = {0, 0};
    const std::string parts[2] = {trim(value.substr(0, comma)), trim(value.substr(comma + 1))};
    for (int i = 0; i < 2; ++i) {
      const char* first = parts[i].data();
      const char* last = first + parts[i].size();
      const auto res = std::from_chars(first, last, v[i]);
      if (parts[i].empty() || res.ec != std::errc() || res.ptr != last || !std::isfinite(v[i]))
        throw ConfigError(bad);
    }
    if (!(v[0] < v[1])) throw ConfigError(bad);
    o.logvar_min = v[0];
    o.logvar_max = v[1];
  };
  s.get = [](const Options& o) {
    if (std::isinf(o.logvar_min) && std::isinf(o.logvar_max)) return std::string("none");
    return format_double(o.logvar_min) + "," + format_double(o.logvar_max);
  };
  return s;
}

// The single source of truth for names, defaults, help and validation.
const std::vector<Spec>& table() {
  static const std::vector<Spec> specs = [] {
    using O = Options;
    constexpr auto none = std::nullopt;
    std::vector<Spec> t;
    {
      Spec c = string_spec("config", &O::config, true, {},
                           "INI file of 'key = value' lines; command-line only");
      c.in_file = false;
      t.push_back(std::move(c));
    }
    t.push_back(string_spec("data", &O::data, false, {}, "training HDF5 file"));
    t.push_back(
        string_spec("test-data", &O::test_data, true, {}, "test HDF5 file; empty = no evaluation"));
    t.push_back(
        string_spec("dataset", &O::dataset, false, {}, "data set name inside the HDF5 files"));
    t.push_back(real_spec("val-fraction", &O::val_fraction, {0, false}, Bound{1, true},
                          "hold out the last round(f x N) rows of the training file for "
                          "validation at every epoch end; 0 = none"));
    t.push_back(string_spec("val-data", &O::val_data, true, {},
                            "validation HDF5 file (instead of --val-fraction); empty = none"));
    t.push_back(choice_spec<StreamMode>(
        "stream", &O::stream,
        {{"auto", StreamMode::Auto}, {"always", StreamMode::Always}, {"never", StreamMode::Never}},
        "stream the data from the files instead of reading them into "
        "memory: auto = when they exceed --data-memory-mb"));
    t.push_back(integer_spec<int64_t>(
        "data-memory-mb", &O::data_memory_mb, 0, int64_t{1} << 30,
        "data each rank may hold in memory (training, validation and test rows), MB; more is "
        "streamed from the files, read ahead in windows; 0 = auto: half of the node's memory "
        "shared by its ranks"));
    t.push_back(integer_spec<int64_t>(
        "stream-window-mb", &O::stream_window_mb, 1, int64_t{1} << 20,
        "streamed training data: rows are shuffled within windows of about this many MB (two "
        "are held), after a shuffle of ~1 MB blocks; larger = closer to a full shuffle"));
    t.push_back(integer_spec<int>("early-stop-patience", &O::early_stop_patience, 0, none,
                                  "stop when the validation loss has not improved for this many "
                                  "evaluations; needs validation data; 0 = off"));
    t.push_back(string_spec("out", &O::out, false, {}, "run directory"));
    t.push_back(integer_spec<int>("epochs", &O::epochs, 1, none, "training epochs"));
    t.push_back(
        integer_spec<int>("batch-size", &O::batch_size, 1, none, "minibatch size per rank"));
    t.push_back(
        real_spec("lr", &O::lr, {0, true}, none,
                  "Adam learning rate (the peak rate of a schedule, for one rank's batch)"));
    // "<name>", not "<a|b|...>": a longer entry would widen every line of --help.
    t.push_back(choice_spec<LrScheduleKind>(
        "lr-schedule", &O::lr_schedule,
        {{"constant", LrScheduleKind::Constant},
         {"step", LrScheduleKind::Step},
         {"cosine", LrScheduleKind::Cosine},
         {"plateau", LrScheduleKind::Plateau}},
        "learning-rate schedule on the global step, after the warm-up: step = torch StepLR, "
        "cosine = CosineAnnealingLR to --lr-min at the last step (--max-steps or epochs x "
        "steps/epoch), plateau = ReduceLROnPlateau on the validation loss, else the test loss, "
        "else the epoch's training loss"));
    t.push_back(integer_spec<int64_t>("lr-warmup-steps", &O::lr_warmup_steps, 0, none,
                                      "linear warm-up: step t < N uses lr x (t+1)/N (torch "
                                      "LinearLR(start_factor=1/N)); 0 = none"));
    t.push_back(integer_spec<int64_t>("lr-step-size", &O::lr_step_size, 1, none,
                                      "step schedule: optimizer steps between reductions "
                                      "(StepLR step_size)"));
    t.push_back(real_spec("lr-gamma", &O::lr_gamma, {0, true}, none,
                          "step schedule: factor per reduction (StepLR gamma)"));
    t.push_back(real_spec("lr-min", &O::lr_min, {0, false}, none,
                          "cosine: the final rate (eta_min); plateau: the lowest rate (min_lr)"));
    t.push_back(real_spec("lr-factor", &O::lr_factor, {0, true}, Bound{1, true},
                          "plateau: factor per reduction (factor)"));
    t.push_back(integer_spec<int>("lr-patience", &O::lr_patience, 0, none,
                                  "plateau: evaluations (epoch ends) without improvement before "
                                  "a reduction (patience)"));
    t.push_back(real_spec("lr-threshold", &O::lr_threshold, {0, false}, none,
                          "plateau: an improvement must beat the best by this fraction "
                          "(threshold, mode rel)"));
    t.push_back(integer_spec<int>("lr-cooldown", &O::lr_cooldown, 0, none,
                                  "plateau: evaluations to wait after a reduction (cooldown)"));
    t.push_back(choice_spec<RankScaling>(
        "lr-scale-with-ranks", &O::lr_scale_with_ranks,
        {{"none", RankScaling::None}, {"linear", RankScaling::Linear}, {"sqrt", RankScaling::Sqrt}},
        "learning rate for the global batch of P ranks: lr x P (linear), "
        "lr x sqrt(P) (sqrt) or lr (none)"));
    for (Spec& spec : t)
      if (spec.name == "lr-schedule" || spec.name == "lr-scale-with-ranks")
        spec.value_name = "<name>";
    t.push_back(integer_spec<int>("latent-dim", &O::latent_dim, 1, none, "latent dimensions"));
    {
      // After latent-dim in the table, so its latent-dim wins wherever both are given.
      Spec l = string_spec("latent-shape", &O::latent_shape, true, {},
                           "a spatial latent CxHxW (e.g. 4x8x8; CxL for 1-D data, CxDxHxW for "
                           "3-D): the mu/logvar heads are 3x3 convolutions on the encoder's "
                           "map, the decoder starts from a map of that shape, and latent-dim "
                           "becomes its size; empty = a flat latent");
      l.value_name = "<CxHxW>";
      l.set = [](Options& o, const std::string& value, const std::string& where) {
        o.latent_shape = value;
        if (value.empty()) return;
        Shape s;
        if (value.find('x') == std::string::npos || !parse_shape_text(value, s) ||
            s.size() > (1 << 24))
          throw ConfigError(where + ": '" + value +
                            "' is not a latent shape of positive sizes: CxHxW (e.g. 4x8x8), or "
                            "CxL for 1-D data, CxDxHxW for 3-D data");
        o.latent_dim = static_cast<int>(s.size());
      };
      t.push_back(l);
    }
    // The names of vae/models.cpp's table (tests/vae/models_test.cpp holds them equal).
    t.push_back(string_spec("model", &O::model, false, {"vae", "iwae", "btcvae"},
                            "the model family: vae = the Gaussian VAE (a beta-VAE with --beta), "
                            "iwae = trained on the importance-weighted bound, btcvae = "
                            "beta-TCVAE, --beta weighing the total correlation (docs/model.md)"));
    t.push_back(hidden_spec());
    t.push_back(string_spec(
        "encoder", &O::encoder, true, {},
        "encoder layers before the mu/logvar heads, comma-separated: 'fc N', 'conv C kK sS pP', "
        "'res C', 'attn', 'gn G', 'silu', ... (docs/layers.md); empty = the MLP of --hidden"));
    t.push_back(string_spec("decoder", &O::decoder, true, {},
                            "decoder layers from z to the data's shape: 'fc N', 'reshape CxHxW', "
                            "'convt C kK sS pP [opO]', 'up 2', 'res C', ... (docs/layers.md); "
                            "empty = the mirrored MLP"));
    t.push_back(bool_spec("conditional", &O::conditional,
                          "conditional VAE: the one-hot /labels go into the first fc layer of "
                          "the encoder and of the decoder"));
    t.push_back(integer_spec<int>("classes", &O::classes, 0, none,
                                  "classes of the conditional model; 0 = largest label + 1"));
    t.push_back(choice_spec<DecoderLikelihood>(
        "likelihood", &O::likelihood,
        {{"bernoulli", DecoderLikelihood::Bernoulli}, {"gaussian", DecoderLikelihood::Gaussian}},
        "decoder likelihood p(x|z)"));
    {
      // A number (fixed sigma) or a learned variance; both set by the one option.
      Spec g = real_spec("gaussian-sigma", &O::gaussian_sigma, {0, true}, none,
                         "decoder standard deviation of the gaussian likelihood: a fixed number, "
                         "or learned = one variance learned for all outputs, learned-per-output "
                         "= one per output (log-variance parameters decoder.out_logvar, "
                         "starting at 0 and held in --logvar-clamp's range; docs/model.md)");
      g.value_name = "<num|learned|learned-per-output>";
      g.help += ", or learned, or learned-per-output";
      const auto number = g.set;
      g.set = [number](Options& o, const std::string& value, const std::string& where) {
        if (trim(value) == "learned" || trim(value) == "learned-per-output") {
          o.decoder_variance = trim(value) == "learned" ? DecoderVariance::Learned
                                                        : DecoderVariance::LearnedPerOutput;
          o.gaussian_sigma = 1.0;
          return;
        }
        number(o, value, where);
        o.decoder_variance = DecoderVariance::Fixed;
      };
      const auto number_text = g.get;
      g.get = [number_text](const Options& o) {
        switch (o.decoder_variance) {
          case DecoderVariance::Learned:
            return std::string("learned");
          case DecoderVariance::LearnedPerOutput:
            return std::string("learned-per-output");
          case DecoderVariance::Fixed:
            break;
        }
        return number_text(o);
      };
      t.push_back(g);
    }
    t.push_back(bool_spec("standardize", &O::standardize,
                          "train on float data scaled to mean 0 and std 1 per feature (training "
                          "set statistics, stored in the checkpoint); gaussian likelihood only"));
    t.push_back(real_spec("beta", &O::beta, {0, false}, none, "KL weight (beta-VAE)"));
    t.push_back(real_spec("kl-warmup-epochs", &O::kl_warmup_epochs, {0, false}, none,
                          "epochs over which the KL weight ramps linearly from 0 to beta"));
    t.push_back(choice_spec<KlScheduleKind>(
        "kl-schedule", &O::kl_schedule,
        {{"linear", KlScheduleKind::Linear}, {"cyclical", KlScheduleKind::Cyclical}},
        "KL weight schedule: linear = --kl-warmup-epochs, then beta; "
        "cyclical = --kl-cycles ramps from 0 to beta (Fu et al. 2019), each "
        "over --kl-cycle-ratio of its cycle"));
    t.push_back(integer_spec<int>("kl-cycles", &O::kl_cycles, 1, none,
                                  "cyclical schedule: cycles over the planned steps"));
    t.push_back(real_spec("kl-cycle-ratio", &O::kl_cycle_ratio, {0, true}, Bound{1, false},
                          "cyclical schedule: share of each cycle over which the KL weight "
                          "ramps linearly from 0 to beta, then holds"));
    t.push_back(real_spec("free-bits", &O::free_bits, {0, false}, none,
                          "KL floor per latent dimension in nats (Kingma et al. 2016): the loss "
                          "uses sum_j max(free-bits, batch-mean KL_j); 0 = off"));
    t.push_back(logvar_clamp_spec());
    t.push_back(real_spec("weight-decay", &O::weight_decay, {0, false}, none,
                          "L2 weight decay added to the gradient, as torch.optim.Adam does"));
    t.push_back(real_spec("grad-clip", &O::grad_clip, {0, false}, none,
                          "clip the summed gradient to this global L2 norm, as "
                          "torch.nn.utils.clip_grad_norm_ does (0 = off)"));
    t.push_back(real_spec("spike-threshold", &O::spike_threshold, {0, false}, none,
                          "skip an update whose global loss or gradient norm lies more than this "
                          "many robust deviations (1.4826 MAD) above the median of the last "
                          "--spike-window healthy steps, on every rank; 0 = off "
                          "(docs/training.md)"));
    t.push_back(integer_spec<int>("spike-window", &O::spike_window, 8, 100000,
                                  "healthy steps the spike test compares with"));
    t.push_back(integer_spec<int>("max-skips", &O::max_skips, 0, 1000000,
                                  "skipped updates in a row after which the run has diverged"));
    t.push_back(choice_spec<DivergenceAction>(
        "on-divergence", &O::on_divergence,
        {{"stop", DivergenceAction::Stop}, {"rollback", DivergenceAction::Rollback}},
        "a diverged run: stop = exit 3, keeping the healthy checkpoints; rollback = reload the "
        "newest healthy checkpoint with the learning rate times --rollback-lr-factor and go on, "
        "up to --max-rollbacks times"));
    t.push_back(integer_spec<int>("max-rollbacks", &O::max_rollbacks, 0, 1000,
                                  "rollbacks of a run (and the runs it resumed) before it stops"));
    t.push_back(real_spec("rollback-lr-factor", &O::rollback_lr_factor, {0, true}, Bound{1, true},
                          "learning-rate factor of each rollback"));
    t.push_back(integer_spec<int>(
        "rollback-skip-steps", &O::rollback_skip_steps, 0, 1000000,
        "after a rollback, pass over the batches of this many steps up to the one that failed "
        "(the spike and the steps before it, as PaLM did), on every rank and in every later "
        "resume; 0 = train on every batch again"));
    t.push_back(real_spec("ema-decay", &O::ema_decay, {0, false}, Bound{1, true},
                          "keep an exponential moving average of the weights with this decay "
                          "(e.g. 0.999), updated after every applied step and stored in the "
                          "checkpoints; 0 = none (docs/training.md)"));
    t.push_back(bool_spec("ema-warmup", &O::ema_warmup,
                          "warm the moving average up: update u uses the decay min(--ema-decay, "
                          "u/(u+9)), as diffusers' EMAModel does; false = --ema-decay from the "
                          "second update on, as torch's AveragedModel with an EMA function"));
    t.push_back(choice_spec<Weights>(
        "eval-weights", &O::eval_weights, {{"raw", Weights::Raw}, {"ema", Weights::Ema}},
        "the weights validation, test, the importance-weighted estimate, the sample grids and "
        "best.h5's choice use: raw = the optimizer's, ema = the moving average (needs "
        "--ema-decay)"));
    t.push_back(real_spec("adam-beta1", &O::adam_beta1, {0, false}, Bound{1, true},
                          "Adam first-moment decay"));
    t.push_back(real_spec("adam-beta2", &O::adam_beta2, {0, false}, Bound{1, true},
                          "Adam second-moment decay"));
    t.push_back(real_spec("adam-eps", &O::adam_eps, {0, true}, none, "Adam epsilon"));
    t.push_back(integer_spec<uint64_t>("seed", &O::seed, 0, none, "random seed"));
    t.push_back(integer_spec<int>("threads", &O::threads, 0, 1024,
                                  "OpenMP threads per rank; 0 = automatic"));
    t.push_back(choice_spec<PrecisionChoice>(
        "precision", &O::precision,
        {{"f32", PrecisionChoice::F32},
         {"bf16", PrecisionChoice::BF16},
         {"auto", PrecisionChoice::Auto}},
        "compute precision of the layers: bf16 runs the fc, conv and convt "
        "layers in bfloat16 (parameters, gradients, Adam and the loss stay "
        "f32; docs/training.md) and is an error on a CPU without "
        "AVX512_BF16; auto = bf16 where the CPU has it, else f32"));
    t.push_back(integer_spec<int>("log-every", &O::log_every, 1, none,
                                  "steps between train rows in metrics.csv and progress lines"));
    t.push_back(integer_spec<int>("eval-batch-size", &O::eval_batch_size, 1, none,
                                  "minibatch size for evaluation"));
    t.push_back(integer_spec<int>("grid-size", &O::grid_size, 1, 32,
                                  "sample grids are grid-size x grid-size images"));
    // At most a million decoder passes per test row: a larger k fits memory (its weights are
    // taken in batches of fewer rows) but would not end (issue 21, item 8).
    t.push_back(integer_spec<int>("iw-samples", &O::iw_samples, 0, 1000000,
                                  "importance samples for the final IWAE test log-likelihood; "
                                  "0 = off"));
    t.push_back(integer_spec<int>(
        "train-iw-samples", &O::train_iw_samples, 0, 4096,
        "--model iwae: samples per data point of the importance-weighted bound it trains on "
        "(Burda et al. 2016; the decoder runs on batch x k rows); 1 = the ELBO's step; 0 = the "
        "model's default (5 for iwae)"));
    t.push_back(integer_spec<int64_t>("max-steps", &O::max_steps, 0, none,
                                      "stop after this many optimizer steps; 0 = no limit"));
    t.push_back(
        string_spec("resume", &O::resume, true, {},
                    "checkpoint to resume from: a path or \"latest\"; empty = start fresh"));
    t.push_back(string_spec("init-weights", &O::init_weights, true, {},
                            "a fresh run's starting parameters: a checkpoint, or an HDF5 file of "
                            "/params/<name> in PyTorch's layout; the optimizer starts fresh; "
                            "--resume ignores it; empty = drawn from --seed"));
    t.push_back(integer_spec<int>("checkpoint-every", &O::checkpoint_every, 0, none,
                                  "epochs between checkpoints; 0 = only at the end"));
    t.push_back(integer_spec<int>("keep-checkpoints", &O::keep_checkpoints, 1, none,
                                  "checkpoints kept on disk"));
    t.push_back(integer_spec<int>("checksum-every", &O::checksum_every, 0, none,
                                  "steps between cross-rank parameter checksum checks; "
                                  "0 = only at start"));
    t.push_back(bool_spec("progress", &O::progress, "terminal progress line"));
    return t;
  }();
  return specs;
}

const Spec* find_spec(const std::string& name) {
  for (const auto& s : table()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// Boost descriptions built from the table. Values are plain strings: conversion happens in
// Spec::set so that every message has the same shape.
po::options_description make_description(bool command_line) {
  po::options_description desc("Options", 100, 50);
  const Options defaults;
  for (const auto& s : table()) {
    if (!command_line && !s.in_file) continue;
    const std::string def = s.get(defaults);
    const std::string text = s.help + " (default: " + (def.empty() ? "empty" : def) + ")";
    auto* value = po::value<std::string>()->value_name(s.value_name);
    if (s.value_name == "<bool>") value->implicit_value("true");
    desc.add_options()(s.name.c_str(), value, text.c_str());
  }
  if (command_line) desc.add_options()("help,h", "print this help and exit");
  return desc;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// " (did you mean 'epochs'?)" when a key is close to a valid one, else "".
std::string suggestion(const std::string& key, bool command_line) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  std::string k = lower(key);
  std::replace(k.begin(), k.end(), '_', '-');
  for (const auto& s : table()) {
    if (!command_line && !s.in_file) continue;
    const size_t d = edit_distance(k, s.name);
    if (d < best_d) {
      best_d = d;
      best = s.name;
    }
  }
  if (best_d <= std::max<size_t>(2, best.size() / 3)) {
    return std::string(" (did you mean '") + (command_line ? "--" : "") + best + "'?)";
  }
  return "";
}

std::string basename_of(const char* argv0) {
  if (argv0 == nullptr || *argv0 == '\0') return "vae_dist";
  return std::filesystem::path(argv0).filename().string();
}

using ValueMap = std::map<std::string, std::string>;

// The 'key = value' lines of `in`; origin names them in errors (a path, or "checkpoint X").
ValueMap read_config(std::istream& in, const std::string& path) {
  po::parsed_options parsed(nullptr);
  try {
    parsed = po::parse_config_file(in, make_description(false), true);
  } catch (const po::error& e) {
    throw ConfigError(path + ": " + e.what() + "; lines must be 'key = value' or '# comment'");
  }
  ValueMap values;
  for (const auto& opt : parsed.options) {
    const std::string& key = opt.string_key;
    if (key == "config") {
      throw ConfigError(path +
                        ": key 'config' is not allowed in a config file; "
                        "pass a single file with --config");
    }
    if (opt.unregistered) {
      throw ConfigError(path + ": unknown key " + in_quotes(key) + suggestion(key, false) +
                        "; run with --help for the list of keys");
    }
    if (values.contains(key)) {
      throw ConfigError(path + ": key " + in_quotes(key) + " is set more than once");
    }
    values[key] = opt.value.empty() ? std::string() : opt.value.front();
  }
  return values;
}

ValueMap read_config_file(const std::string& path) {
  std::ifstream in(path);
  std::error_code ec;
  if (!in || std::filesystem::is_directory(path, ec)) {
    throw ConfigError("--config: cannot open " + in_quotes(path) +
                      "; check the path (relative paths start at the current directory)");
  }
  return read_config(in, path);
}

}  // namespace

void check_option_combinations(const Options& o) {
  if (o.standardize && o.likelihood == DecoderLikelihood::Bernoulli)
    throw ConfigError(
        "--standardize needs --likelihood gaussian: standardised values are not in [0, 1], "
        "which the Bernoulli likelihood needs; add --likelihood gaussian or drop --standardize");
  if (o.kl_schedule == KlScheduleKind::Cyclical && o.kl_warmup_epochs > 0)
    throw ConfigError(
        "--kl-warmup-epochs belongs to --kl-schedule linear; the cyclical schedule ramps by "
        "--kl-cycles and --kl-cycle-ratio; drop one of them");
  const bool validation = o.val_fraction > 0 || !o.val_data.empty();
  if (o.val_fraction > 0 && !o.val_data.empty())
    throw ConfigError("--val-fraction and --val-data both name validation data; give one of them");
  if (o.early_stop_patience > 0 && !validation)
    throw ConfigError(
        "--early-stop-patience needs validation data; add --val-fraction (e.g. 0.1) or "
        "--val-data FILE, or set --early-stop-patience 0");
  if (o.decoder_variance != DecoderVariance::Fixed && o.likelihood != DecoderLikelihood::Gaussian)
    throw ConfigError("--gaussian-sigma " +
                      std::string(o.decoder_variance == DecoderVariance::Learned
                                      ? "learned"
                                      : "learned-per-output") +
                      " learns the variance of the gaussian likelihood; add --likelihood "
                      "gaussian, or drop it");
  if (o.eval_weights == Weights::Ema && o.ema_decay == 0)
    throw ConfigError(
        "--eval-weights ema evaluates the moving average of the weights, which --ema-decay "
        "keeps; add --ema-decay (e.g. 0.999) or use --eval-weights raw");
}

std::string help_text(const std::string& program) {
  std::ostringstream out;
  out << "Usage: " << program << " [--config FILE] [--key value ...]\n"
      << "Trains a variational autoencoder, data-parallel over MPI ranks.\n"
      << "Settings come from the command line, then the --config INI file ('key = value' lines,\n"
      << "the same key names without the dashes, '#' starts a comment), then the defaults.\n\n"
      << make_description(true);
  return out.str();
}

ParseResult parse_options(int argc, const char* const argv[]) {
  ParseResult result;
  const auto desc = make_description(true);
  po::parsed_options parsed(nullptr);
  try {
    // No guessing: an abbreviated or misspelt option is an error, never a silent match.
    const int style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    parsed =
        po::command_line_parser(argc, argv).options(desc).style(style).allow_unregistered().run();
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + "; run with --help for the list of options");
  }
  const std::string program = basename_of(argc > 0 ? argv[0] : nullptr);
  for (const auto& opt : parsed.options) {
    if (opt.string_key == "help" && !opt.unregistered) {
      result.help = true;
      result.help_text = help_text(program);
      return result;
    }
  }

  ValueMap cli;
  for (const auto& opt : parsed.options) {
    if (opt.string_key.empty()) {
      const std::string token = opt.value.empty() ? std::string() : opt.value.front();
      throw ConfigError("unexpected argument " + in_quotes(token) +
                        "; options are written --key value or --key=value");
    }
    if (opt.unregistered) {
      std::string token =
          opt.original_tokens.empty() ? opt.string_key : opt.original_tokens.front();
      token = token.substr(0, token.find('='));
      std::string key = token;
      key.erase(0, key.find_first_not_of('-'));
      throw ConfigError("unknown option " + in_quotes(token) + suggestion(key, true) +
                        "; run with --help for the list of options");
    }
    const Spec* spec = find_spec(opt.string_key);
    if (spec == nullptr) continue;  // cannot happen: every registered key is in the table
    std::string value = opt.value.empty() ? std::string("true") : opt.value.front();
    if (value.rfind("--", 0) == 0) {
      // Boost takes the next token as the value even when it is another option.
      throw ConfigError("--" + spec->name + ": the value is missing (got " + in_quotes(value) +
                        ")");
    }
    if (cli.contains(spec->name)) {
      throw ConfigError("--" + spec->name + " is given more than once on the command line");
    }
    cli[spec->name] = value;
  }

  ValueMap file;
  if (auto it = cli.find("config"); it != cli.end() && !it->second.empty()) {
    file = read_config_file(it->second);
  }

  Options& o = result.options;
  for (const auto& spec : table()) {
    if (auto it = cli.find(spec.name); it != cli.end()) {
      spec.set(o, it->second, "--" + spec.name);
    } else if (auto jt = file.find(spec.name); jt != file.end()) {
      spec.set(o, jt->second, cli.at("config") + ": " + spec.name);
    }
  }
  check_option_combinations(o);
  return result;
}

Options parse_config_text(const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  const ValueMap values = read_config(in, origin);
  Options o;
  for (const auto& spec : table())
    if (auto it = values.find(spec.name); it != values.end())
      spec.set(o, it->second, origin + ": " + spec.name);
  return o;
}

std::string format_options(const Options& options) {
  std::ostringstream out;
  out << "# vae_dist resolved configuration; repeat the run with --config <this file>.\n";
  for (const auto& spec : table()) {
    const std::string value = spec.get(options);
    if (!spec.in_file) {
      out << "# " << spec.name << " = " << (value.empty() ? "(none)" : value) << "\n";
    } else {
      out << spec.name << " = " << value << "\n";
    }
  }
  return out.str();
}

const char* likelihood_name(DecoderLikelihood l) {
  return l == DecoderLikelihood::Gaussian ? "gaussian" : "bernoulli";
}

const char* precision_choice_name(PrecisionChoice p) {
  switch (p) {
    case PrecisionChoice::BF16:
      return "bf16";
    case PrecisionChoice::Auto:
      return "auto";
    case PrecisionChoice::F32:
      break;
  }
  return "f32";
}

const char* stream_mode_name(StreamMode mode) {
  switch (mode) {
    case StreamMode::Always:
      return "always";
    case StreamMode::Never:
      return "never";
    case StreamMode::Auto:
      break;
  }
  return "auto";
}

}  // namespace vd
