// Tests of vd::parse_options / format_options: defaults, INI file, precedence, every error
// kind, the --help text and the format -> parse round trip.
#include "config/options.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "support/temp_dir.hpp"

namespace {

vd::ParseResult parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"vae_dist"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return vd::parse_options(static_cast<int>(argv.size()), argv.data());
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  ASSERT_TRUE(out.good());
}

// The ConfigError message for args; fails the test when nothing is thrown.
std::string error_of(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const vd::ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no vd::ConfigError for the given arguments";
  return "";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "in: " << (haystack)

TEST(Options, DefaultsMatchTheDocumentedValues) {
  const auto r = parse({});
  EXPECT_FALSE(r.help);
  const vd::Options& o = r.options;
  EXPECT_EQ(o.config, "");
  EXPECT_EQ(o.data, "data/fashion-mnist/train.h5");
  EXPECT_EQ(o.test_data, "data/fashion-mnist/test.h5");
  EXPECT_EQ(o.dataset, "/images");
  EXPECT_EQ(o.out, "runs/default");
  EXPECT_EQ(o.epochs, 10);
  EXPECT_EQ(o.batch_size, 128);
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.latent_dim, 20);
  EXPECT_EQ(o.hidden, std::vector<int>{400});
  EXPECT_EQ(o.likelihood, vd::DecoderLikelihood::Bernoulli);
  EXPECT_EQ(o.gaussian_sigma, 1.0);
  EXPECT_EQ(o.beta, 1.0);
  EXPECT_EQ(o.kl_warmup_epochs, 0.0);
  EXPECT_EQ(o.weight_decay, 0.0);
  EXPECT_EQ(o.adam_beta1, 0.9);
  EXPECT_EQ(o.adam_beta2, 0.999);
  EXPECT_EQ(o.adam_eps, 1e-8);
  EXPECT_EQ(o.seed, 1u);
  EXPECT_EQ(o.threads, 0);
  EXPECT_EQ(o.log_every, 100);
  EXPECT_EQ(o.eval_batch_size, 1000);
  EXPECT_EQ(o.grid_size, 8);
  EXPECT_EQ(o.iw_samples, 0);
  EXPECT_EQ(o.max_steps, 0);
  EXPECT_EQ(o.resume, "");
  EXPECT_EQ(o.checkpoint_every, 1);
  EXPECT_EQ(o.keep_checkpoints, 3);
  EXPECT_EQ(o.checksum_every, 1000);
  EXPECT_TRUE(o.progress);
  EXPECT_EQ(o, vd::Options{});
}

TEST(Options, CommandLineSetsEveryKind) {
  const auto o =
      parse({"--epochs", "3", "--lr=0.5", "--hidden", "512, 256", "--likelihood", "gaussian",
             "--seed", "18446744073709551615", "--max-steps", "5000000000", "--progress", "false",
             "--test-data", "", "--grid-size", "32", "--adam-beta1", "0"})
          .options;
  EXPECT_EQ(o.epochs, 3);
  EXPECT_EQ(o.lr, 0.5);
  EXPECT_EQ(o.hidden, (std::vector<int>{512, 256}));
  EXPECT_EQ(o.likelihood, vd::DecoderLikelihood::Gaussian);
  EXPECT_EQ(o.seed, 18446744073709551615ull);
  EXPECT_EQ(o.max_steps, 5000000000ll);
  EXPECT_FALSE(o.progress);
  EXPECT_EQ(o.test_data, "");
  EXPECT_EQ(o.grid_size, 32);
  EXPECT_EQ(o.adam_beta1, 0.0);
}

TEST(Options, BareBooleanFlagMeansTrue) {
  EXPECT_TRUE(parse({"--progress"}).options.progress);
  EXPECT_TRUE(parse({"--progress", "--epochs", "2"}).options.progress);
  EXPECT_EQ(parse({"--progress", "--epochs", "2"}).options.epochs, 2);
  EXPECT_FALSE(parse({"--progress=no"}).options.progress);
}

TEST(Options, IniFileValuesAreRead) {
  vd::testing::TempDir dir;
  const std::string cfg = dir.file("run.cfg");
  write_file(cfg,
             "# a comment\n"
             "data = a/train.h5\n"
             "  test-data   =   b/test.h5   \n"
             "out = runs/x # trailing comment\n"
             "epochs = 4\n"
             "hidden = 512,256,128\n"
             "likelihood = gaussian\n"
             "gaussian-sigma = 0.25\n"
             "kl-warmup-epochs = 2.5\n"
             "resume = latest\n"
             "progress = off\n"
             "\n");
  const auto o = parse({"--config", cfg}).options;
  EXPECT_EQ(o.config, cfg);
  EXPECT_EQ(o.data, "a/train.h5");
  EXPECT_EQ(o.test_data, "b/test.h5");
  EXPECT_EQ(o.out, "runs/x");
  EXPECT_EQ(o.epochs, 4);
  EXPECT_EQ(o.hidden, (std::vector<int>{512, 256, 128}));
  EXPECT_EQ(o.likelihood, vd::DecoderLikelihood::Gaussian);
  EXPECT_EQ(o.gaussian_sigma, 0.25);
  EXPECT_EQ(o.kl_warmup_epochs, 2.5);
  EXPECT_EQ(o.resume, "latest");
  EXPECT_FALSE(o.progress);
  EXPECT_EQ(o.batch_size, 128);  // untouched keys keep their defaults
}

TEST(Options, CommandLineWinsOverFileWhichWinsOverDefaults) {
  vd::testing::TempDir dir;
  const std::string cfg = dir.file("run.cfg");
  write_file(cfg, "epochs = 5\nlr = 0.01\nprogress = false\n");
  const auto o = parse({"--epochs", "7", "--config", cfg, "--progress"}).options;
  EXPECT_EQ(o.epochs, 7);       // command line
  EXPECT_EQ(o.lr, 0.01);        // file
  EXPECT_TRUE(o.progress);      // command line
  EXPECT_EQ(o.latent_dim, 20);  // default
}

TEST(Options, UnknownCommandLineOptionIsNamedWithASuggestion) {
  const auto msg = error_of({"--epoch", "3"});
  EXPECT_CONTAINS(msg, "'--epoch'");
  EXPECT_CONTAINS(msg, "did you mean '--epochs'");
  EXPECT_CONTAINS(error_of({"--batch_size=3"}), "'--batch-size'");
  EXPECT_CONTAINS(error_of({"--zzzzzzzz"}), "'--zzzzzzzz'");
}

TEST(Options, UnknownFileKeyNamesFileAndKey) {
  vd::testing::TempDir dir;
  const std::string cfg = dir.file("bad.cfg");
  write_file(cfg, "epochs = 2\nlaten-dim = 4\n");
  const auto msg = error_of({"--config", cfg});
  EXPECT_CONTAINS(msg, cfg);
  EXPECT_CONTAINS(msg, "'laten-dim'");
  EXPECT_CONTAINS(msg, "latent-dim'?");
}

TEST(Options, MalformedValuesNameTheKey) {
  EXPECT_CONTAINS(error_of({"--epochs", "ten"}), "--epochs: 'ten' is not an integer");
  EXPECT_CONTAINS(error_of({"--epochs", "3.5"}), "--epochs: '3.5' is not an integer");
  EXPECT_CONTAINS(error_of({"--epochs", "3x"}), "--epochs: '3x' is not an integer");
  EXPECT_CONTAINS(error_of({"--lr", "fast"}), "--lr: 'fast' is not a finite number");
  EXPECT_CONTAINS(error_of({"--lr", "nan"}), "--lr:");
  EXPECT_CONTAINS(error_of({"--lr", "inf"}), "--lr:");
  EXPECT_CONTAINS(error_of({"--seed", "-1"}), "--seed: '-1' is not an integer");
  EXPECT_CONTAINS(error_of({"--progress", "maybe"}), "--progress: 'maybe' is not a boolean");
  EXPECT_CONTAINS(error_of({"--epochs", ""}), "--epochs:");
}

TEST(Options, MalformedFileValueNamesFileAndKey) {
  vd::testing::TempDir dir;
  const std::string cfg = dir.file("bad.cfg");
  write_file(cfg, "batch-size = lots\n");
  const auto msg = error_of({"--config", cfg});
  EXPECT_CONTAINS(msg, cfg + ": batch-size: 'lots' is not an integer");
}

TEST(Options, OutOfRangeValuesStateTheAllowedRange) {
  EXPECT_CONTAINS(error_of({"--epochs", "0"}),
                  "--epochs: 0 is out of range; it must be an integer >= 1");
  EXPECT_CONTAINS(error_of({"--batch-size", "-5"}), ">= 1");
  EXPECT_CONTAINS(error_of({"--grid-size", "33"}), "--grid-size: 33 is out of range");
  EXPECT_CONTAINS(error_of({"--grid-size", "0"}), "1..32");
  EXPECT_CONTAINS(error_of({"--lr", "0"}), "--lr: 0 is out of range; it must be a number > 0");
  EXPECT_CONTAINS(error_of({"--gaussian-sigma", "-1"}), "--gaussian-sigma");
  EXPECT_CONTAINS(error_of({"--beta", "-0.1"}), "--beta: -0.1 is out of range");
  EXPECT_CONTAINS(error_of({"--adam-beta1", "1"}),
                  "--adam-beta1: 1 is out of range; it must be a number in [0, 1)");
  EXPECT_CONTAINS(error_of({"--adam-beta2", "-0.5"}), "--adam-beta2");
  EXPECT_CONTAINS(error_of({"--adam-eps", "0"}), "--adam-eps");
  EXPECT_CONTAINS(error_of({"--threads", "-1"}), "--threads");
  EXPECT_CONTAINS(error_of({"--iw-samples", "-1"}), "--iw-samples");
  EXPECT_CONTAINS(error_of({"--max-steps", "-1"}), "--max-steps");
  EXPECT_CONTAINS(error_of({"--keep-checkpoints", "0"}), "--keep-checkpoints");
  EXPECT_CONTAINS(error_of({"--checkpoint-every", "-1"}), "--checkpoint-every");
  EXPECT_CONTAINS(error_of({"--checksum-every", "-1"}), "--checksum-every");
  EXPECT_CONTAINS(error_of({"--kl-warmup-epochs", "-1"}), "--kl-warmup-epochs");
  EXPECT_CONTAINS(error_of({"--weight-decay", "-1"}), "--weight-decay");
  EXPECT_CONTAINS(error_of({"--log-every", "0"}), "--log-every");
  EXPECT_CONTAINS(error_of({"--eval-batch-size", "0"}), "--eval-batch-size");
  EXPECT_CONTAINS(error_of({"--latent-dim", "0"}), "--latent-dim");
  EXPECT_CONTAINS(error_of({"--epochs", "99999999999"}), "--epochs: '99999999999' is out of range");
  EXPECT_CONTAINS(error_of({"--lr", "1e999"}), "--lr: '1e999' is out of range");
}

TEST(Options, BoundaryValuesAreAccepted) {
  const auto o =
      parse({"--threads", "0", "--beta", "0", "--adam-beta2", "0.9999999", "--checkpoint-every",
             "0", "--checksum-every", "0", "--iw-samples", "1", "--grid-size", "1"})
          .options;
  EXPECT_EQ(o.threads, 0);
  EXPECT_EQ(o.beta, 0.0);
  EXPECT_EQ(o.adam_beta2, 0.9999999);
  EXPECT_EQ(o.checkpoint_every, 0);
  EXPECT_EQ(o.iw_samples, 1);
  EXPECT_EQ(o.grid_size, 1);
}

TEST(Options, MissingConfigFileIsNamed) {
  const auto msg = error_of({"--config", "/nonexistent/dir/run.cfg"});
  EXPECT_CONTAINS(msg, "--config");
  EXPECT_CONTAINS(msg, "/nonexistent/dir/run.cfg");
  vd::testing::TempDir dir;  // a directory opens as a stream but is not a config file
  EXPECT_CONTAINS(error_of({"--config", dir.path().string()}), "--config: cannot open");
}

TEST(Options, LikelihoodMustBeAChoice) {
  const auto msg = error_of({"--likelihood", "poisson"});
  EXPECT_CONTAINS(msg, "--likelihood: 'poisson' is not one of bernoulli, gaussian");
  EXPECT_CONTAINS(error_of({"--likelihood", "Bernoulli"}), "--likelihood");
}

TEST(Options, BadHiddenListsAreRejected) {
  for (const std::string bad :
       {"", "512,,256", "512,", ",512", "0", "a,b", "-3", "512;256", "3.5", "99999999999"}) {
    SCOPED_TRACE(bad);
    const auto msg = error_of({"--hidden", bad});
    EXPECT_CONTAINS(msg, "--hidden: '" + bad + "' is not a comma-separated list");
  }
}

TEST(Options, StructuralCommandLineErrors) {
  EXPECT_CONTAINS(error_of({"--epochs", "2", "--epochs", "3"}), "--epochs is given more than once");
  EXPECT_CONTAINS(error_of({"stray"}), "unexpected argument 'stray'");
  EXPECT_CONTAINS(error_of({"--out", "--epochs", "3"}), "--out: the value is missing");
  EXPECT_CONTAINS(error_of({"--epochs"}), "epochs");
  EXPECT_CONTAINS(error_of({"--data", ""}), "--data: the value must not be empty");
}

TEST(Options, StructuralFileErrors) {
  vd::testing::TempDir dir;
  const std::string dup = dir.file("dup.cfg");
  write_file(dup, "epochs = 2\nepochs = 3\n");
  EXPECT_CONTAINS(error_of({"--config", dup}), "'epochs' is set more than once");
  const std::string nested = dir.file("nested.cfg");
  write_file(nested, "config = other.cfg\n");
  EXPECT_CONTAINS(error_of({"--config", nested}), "'config' is not allowed");
  const std::string junk = dir.file("junk.cfg");
  write_file(junk, "this line has no equals sign\n");
  EXPECT_CONTAINS(error_of({"--config", junk}), junk);
  const std::string section = dir.file("section.cfg");
  write_file(section, "[train]\nepochs = 2\n");
  EXPECT_CONTAINS(error_of({"--config", section}), "'train.epochs'");
}

TEST(Options, HelpNeedsNothingElse) {
  const auto r = parse({"--config", "/nonexistent.cfg", "--epochs", "zero", "--bogus", "--help"});
  EXPECT_TRUE(r.help);
  EXPECT_CONTAINS(r.help_text, "Usage: vae_dist");
  EXPECT_TRUE(parse({"-h"}).help);
  EXPECT_FALSE(parse({}).help);
}

// Whitespace-normalised help text, so line wrapping cannot split what the test looks for.
std::string squashed(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool space = c == ' ' || c == '\n' || c == '\t';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  return out;
}

TEST(Options, ScheduleAndValidationOptionsParseCheckRangesAndCombinations) {
  const vd::Options d;
  EXPECT_EQ(d.lr_schedule, vd::LrScheduleKind::Constant);
  EXPECT_EQ(d.lr_warmup_steps, 0);
  EXPECT_EQ(d.lr_scale_with_ranks, vd::RankScaling::None);
  EXPECT_EQ(d.lr_patience, 10);  // torch's ReduceLROnPlateau defaults
  EXPECT_EQ(d.lr_factor, 0.1);
  EXPECT_EQ(d.lr_threshold, 1e-4);
  EXPECT_EQ(d.val_fraction, 0.0);
  EXPECT_EQ(d.early_stop_patience, 0);
  const vd::Options o = parse({"--lr-schedule",
                               "cosine",
                               "--lr-warmup-steps",
                               "100",
                               "--lr-min",
                               "1e-5",
                               "--lr-scale-with-ranks",
                               "sqrt",
                               "--val-fraction",
                               "0.1",
                               "--early-stop-patience",
                               "5",
                               "--lr-step-size",
                               "7",
                               "--lr-gamma",
                               "0.5",
                               "--lr-factor",
                               "0.2",
                               "--lr-patience",
                               "3",
                               "--lr-threshold",
                               "0",
                               "--lr-cooldown",
                               "2"})
                            .options;
  EXPECT_EQ(o.lr_schedule, vd::LrScheduleKind::Cosine);
  EXPECT_EQ(o.lr_warmup_steps, 100);
  EXPECT_EQ(o.lr_min, 1e-5);
  EXPECT_EQ(o.lr_scale_with_ranks, vd::RankScaling::Sqrt);
  EXPECT_EQ(o.val_fraction, 0.1);
  EXPECT_EQ(o.early_stop_patience, 5);
  EXPECT_EQ(o.lr_step_size, 7);
  EXPECT_EQ(o.lr_gamma, 0.5);
  EXPECT_EQ(o.lr_factor, 0.2);
  EXPECT_EQ(o.lr_patience, 3);
  EXPECT_EQ(o.lr_threshold, 0.0);
  EXPECT_EQ(o.lr_cooldown, 2);
  EXPECT_EQ(parse({"--val-data", "v.h5", "--early-stop-patience", "2"}).options.val_data, "v.h5");

  EXPECT_CONTAINS(error_of({"--lr-schedule", "exponential"}), "--lr-schedule");
  EXPECT_CONTAINS(error_of({"--lr-scale-with-ranks", "quadratic"}), "none, linear, sqrt");
  EXPECT_CONTAINS(error_of({"--val-fraction", "1.5"}), "--val-fraction: 1.5 is out of range");
  EXPECT_CONTAINS(error_of({"--val-fraction", "1"}), "[0, 1)");
  EXPECT_CONTAINS(error_of({"--lr-factor", "1"}), "--lr-factor");
  EXPECT_CONTAINS(error_of({"--lr-step-size", "0"}), "--lr-step-size");
  EXPECT_CONTAINS(error_of({"--lr-warmup-steps", "-1"}), "--lr-warmup-steps");
  EXPECT_CONTAINS(error_of({"--early-stop-patience", "3"}),
                  "--early-stop-patience needs validation data; add --val-fraction");
  EXPECT_CONTAINS(error_of({"--val-fraction", "0.1", "--val-data", "v.h5"}), "give one of them");
}

TEST(Options, GaussianSigmaIsANumberOrLearnedAndRoundTrips) {
  vd::Options o = parse({"--likelihood", "gaussian", "--gaussian-sigma", "learned"}).options;
  EXPECT_EQ(o.decoder_variance, vd::DecoderVariance::Learned);
  EXPECT_NE(vd::format_options(o).find("gaussian-sigma = learned\n"), std::string::npos);
  o = parse({"--likelihood", "gaussian", "--gaussian-sigma", "learned-per-output"}).options;
  EXPECT_EQ(o.decoder_variance, vd::DecoderVariance::LearnedPerOutput);
  EXPECT_NE(vd::format_options(o).find("gaussian-sigma = learned-per-output\n"), std::string::npos);
  o = parse({"--likelihood", "gaussian", "--gaussian-sigma", "0.25"}).options;
  EXPECT_EQ(o.decoder_variance, vd::DecoderVariance::Fixed);
  EXPECT_EQ(o.gaussian_sigma, 0.25);
  EXPECT_CONTAINS(error_of({"--gaussian-sigma", "learned"}), "add --likelihood gaussian");
  EXPECT_CONTAINS(error_of({"--gaussian-sigma", "learnt"}), "--gaussian-sigma");
  EXPECT_CONTAINS(error_of({"--gaussian-sigma", "0"}), "--gaussian-sigma");
}

TEST(Options, MovingAverageOptionsParseAndEmaEvaluationNeedsADecay) {
  const vd::Options o =
      parse({"--ema-decay", "0.999", "--ema-warmup", "false", "--eval-weights", "ema"}).options;
  EXPECT_EQ(o.ema_decay, 0.999);
  EXPECT_FALSE(o.ema_warmup);
  EXPECT_EQ(o.eval_weights, vd::Weights::Ema);
  const vd::Options d = parse({}).options;
  EXPECT_EQ(d.ema_decay, 0.0);
  EXPECT_TRUE(d.ema_warmup);
  EXPECT_EQ(d.eval_weights, vd::Weights::Raw);
  EXPECT_CONTAINS(error_of({"--ema-decay", "1"}), "--ema-decay");
  EXPECT_CONTAINS(error_of({"--ema-decay", "-0.5"}), "--ema-decay");
  EXPECT_CONTAINS(error_of({"--eval-weights", "best"}), "--eval-weights");
  EXPECT_CONTAINS(error_of({"--eval-weights", "ema"}),
                  "--eval-weights ema evaluates the moving average of the weights, which "
                  "--ema-decay keeps");
}

TEST(Options, HelpListsEveryOptionWithItsDefault) {
  const std::string help = squashed(parse({"--help"}).help_text);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"config", "empty"},
      {"data", "data/fashion-mnist/train.h5"},
      {"test-data", "data/fashion-mnist/test.h5"},
      {"dataset", "/images"},
      {"out", "runs/default"},
      {"epochs", "10"},
      {"batch-size", "128"},
      {"lr", "0.001"},
      {"latent-dim", "20"},
      {"hidden", "400"},
      {"likelihood", "bernoulli"},
      {"gaussian-sigma", "1"},
      {"beta", "1"},
      {"kl-warmup-epochs", "0"},
      {"weight-decay", "0"},
      {"adam-beta1", "0.9"},
      {"adam-beta2", "0.999"},
      {"adam-eps", "1e-08"},
      {"seed", "1"},
      {"threads", "0"},
      {"log-every", "100"},
      {"eval-batch-size", "1000"},
      {"grid-size", "8"},
      {"iw-samples", "0"},
      {"max-steps", "0"},
      {"resume", "empty"},
      {"checkpoint-every", "1"},
      {"keep-checkpoints", "3"},
      {"checksum-every", "1000"},
      {"progress", "true"},
  };
  // An option's entry starts "--name <value>", or "--name [=<bool>..." for a bare flag.
  auto entry = [&](const std::string& name, size_t from) {
    const auto a = help.find("--" + name + " <", from);
    return a != std::string::npos ? a : help.find("--" + name + " [=", from);
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [name, def] = expected[i];
    SCOPED_TRACE(name);
    const auto at = entry(name, 0);
    ASSERT_NE(at, std::string::npos);
    // The default belongs to this option: it must come before the next option's entry.
    const auto end =
        i + 1 < expected.size() ? entry(expected[i + 1].first, at) : help.find("--help", at);
    ASSERT_NE(end, std::string::npos);
    const auto d = help.find("(default: " + def + ")", at);
    EXPECT_TRUE(d != std::string::npos && d < end) << help.substr(at, end - at);
  }
  EXPECT_CONTAINS(help, "--help");
}

TEST(Options, FormatListsEveryKeyAndRoundTrips) {
  vd::Options o;
  o.data = "x/train.h5";
  o.test_data = "";
  o.dataset = "/pixels";
  o.out = "runs/rt";
  o.likelihood = vd::DecoderLikelihood::Gaussian;
  o.resume = "latest";
  o.epochs = 3;
  o.batch_size = 17;
  o.latent_dim = 2;
  o.threads = 4;
  o.log_every = 7;
  o.eval_batch_size = 99;
  o.grid_size = 5;
  o.iw_samples = 50;
  o.checkpoint_every = 0;
  o.keep_checkpoints = 9;
  o.checksum_every = 0;
  o.hidden = {1024, 512, 3};
  o.lr = 0.1 + 0.2;  // not exactly 0.3: needs all 17 digits
  o.gaussian_sigma = 1.0 / 3.0;
  o.beta = 4;
  o.kl_warmup_epochs = 0.5;
  o.weight_decay = 1e-5;
  o.adam_beta1 = 0.85;
  o.adam_beta2 = 0.98;
  o.adam_eps = 1e-7;
  o.seed = 12345678901234567890ull;
  o.max_steps = 123456789012;
  o.progress = false;
  o.lr_schedule = vd::LrScheduleKind::Plateau;
  o.lr_warmup_steps = 12;
  o.lr_min = 1.0 / 3.0;
  o.lr_scale_with_ranks = vd::RankScaling::Linear;
  o.val_data = "v.h5";
  o.early_stop_patience = 4;

  const std::string text = vd::format_options(o);
  for (const char* key : {"data = ",
                          "test-data = ",
                          "dataset = ",
                          "out = ",
                          "epochs = ",
                          "batch-size = ",
                          "lr = ",
                          "latent-dim = ",
                          "hidden = 1024,512,3",
                          "likelihood = ",
                          "gaussian-sigma = ",
                          "beta = ",
                          "kl-warmup-epochs = ",
                          "weight-decay = ",
                          "adam-beta1 = ",
                          "adam-beta2 = ",
                          "adam-eps = ",
                          "seed = ",
                          "threads = ",
                          "log-every = ",
                          "eval-batch-size = ",
                          "grid-size = ",
                          "iw-samples = ",
                          "max-steps = ",
                          "resume = ",
                          "checkpoint-every = ",
                          "keep-checkpoints = ",
                          "checksum-every = ",
                          "progress = false",
                          "# config = "}) {
    EXPECT_CONTAINS(text, std::string("\n") + key);
  }

  vd::testing::TempDir dir;
  const std::string cfg = dir.file("resolved.cfg");
  write_file(cfg, text);
  vd::Options back = parse({"--config", cfg}).options;
  EXPECT_EQ(back.config, cfg);
  back.config = o.config;
  EXPECT_EQ(back, o) << text;

  // The defaults round-trip as well.
  write_file(cfg, vd::format_options(vd::Options{}));
  back = parse({"--config", cfg}).options;
  back.config.clear();
  EXPECT_EQ(back, vd::Options{});
}

}  // namespace

namespace {

// A choice option is held as its enum: each name parses to its value and formats back to the
// name; another name is an error listing the choices.
TEST(Options, StreamIsAnEnumThatRoundTripsByName) {
  EXPECT_EQ(parse({}).options.stream, vd::StreamMode::Auto);
  for (const auto& [name, mode] :
       {std::pair{"auto", vd::StreamMode::Auto}, std::pair{"always", vd::StreamMode::Always},
        std::pair{"never", vd::StreamMode::Never}}) {
    const vd::Options o = parse({"--stream", name}).options;
    EXPECT_EQ(o.stream, mode) << name;
    EXPECT_EQ(std::string(vd::stream_mode_name(o.stream)), name);
    EXPECT_CONTAINS(vd::format_options(o), std::string("stream = ") + name);
    EXPECT_EQ(vd::parse_config_text(vd::format_options(o), "test").stream, mode) << name;
  }
  EXPECT_CONTAINS(error_of({"--stream", "sometimes"}),
                  "--stream: 'sometimes' is not one of auto, always, never");
  EXPECT_CONTAINS(error_of({"--stream", ""}), "--stream: the value must not be empty");
}

TEST(Options, ThreadsHaveACap) {
  EXPECT_EQ(parse({"--threads", "1024"}).options.threads, 1024);
  EXPECT_CONTAINS(error_of({"--threads", "100000"}),
                  "--threads: 100000 is out of range; it must be an integer in 0..1024");
}

}  // namespace
