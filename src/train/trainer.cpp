// Trainer: epochs of sharded, shuffled batches; gradient allreduce; Adam; evaluation; outputs.
#include "train/trainer.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "data/shard.hpp"
#include "io/image_grid.hpp"
#include "io/metrics_log.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "optim/adam.hpp"
#include "vae/model.hpp"

namespace vd {

namespace {

// Streams of random numbers, each derived from (seed, stream, ...), so every rank and
// every purpose draws from its own reproducible sequence.
enum Stream : uint64_t { kInit = 1, kShuffle = 2, kEps = 3, kEvalEps = 4, kGrid = 5, kIw = 6 };

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  const long t = std::lround(std::max(0.0, s));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

}  // namespace

struct Trainer::State {
  const Options& opt;
  const Comm& comm;
  Context ctx;
  Shard train;
  std::optional<Shard> test;
  ParamStore store;
  std::unique_ptr<Vae> vae;
  std::unique_ptr<Adam> adam;
  std::unique_ptr<MetricsLog> log;
  std::filesystem::path out;
  int64_t steps_per_epoch = 0;
  int64_t step = 0, samples = 0;
  std::vector<float> grid_z;  // fixed prior draws for comparable sample grids [G*G, L]
  bool tty = false;

  State(const Options& o, const Comm& c) : opt(o), comm(c) {}

  // Rows this step takes on rank r: the step's slice of r's shard (possibly empty).
  int64_t rows_in_step(int64_t shard_rows_r, int64_t s) const {
    const int64_t b = opt.batch_size;
    return std::clamp<int64_t>(shard_rows_r - s * b, 0, b);
  }
  float beta_at(int64_t global_step) const {
    if (opt.kl_warmup_epochs <= 0) return static_cast<float>(opt.beta);
    const double ramp = opt.kl_warmup_epochs * static_cast<double>(steps_per_epoch);
    return static_cast<float>(opt.beta * std::min(1.0, static_cast<double>(global_step) / ramp));
  }
  void check_replicas(const char* when) const {
    const uint64_t h = checksum(store.params());
    if (comm.allreduce_min(h) != comm.allreduce_max(h))
      throw DistError(std::string("the model replicas differ across ranks ") + when +
                      " (parameter checksums disagree); the ranks no longer train one model."
                      " Check that every rank runs the same binary and configuration.");
  }
  LossSums evaluate(int epoch);
  void write_grids(int epoch);
  double iw_nll();
};

Trainer::Trainer(const Options& options, const Comm& comm)
    : s_(std::make_unique<State>(options, comm)) {
  State& s = *s_;
  const Options& opt = options;
  const int threads = resolve_threads(opt.threads, comm);
  omp_set_num_threads(threads);

  VaeConfig vc;
  vc.likelihood = parse_likelihood(opt.likelihood);
  vc.hidden = opt.hidden;
  vc.latent_dim = opt.latent_dim;
  vc.gaussian_sigma = static_cast<float>(opt.gaussian_sigma);
  const ValueCheck check =
      vc.likelihood == Likelihood::Bernoulli ? ValueCheck::UnitInterval : ValueCheck::None;

  s.train = Shard::read(opt.data, opt.dataset, comm.rank(), comm.size(), check);
  vc.data_dim = static_cast<int>(s.train.sample_size());
  if (!opt.test_data.empty()) {
    s.test = Shard::read(opt.test_data, opt.dataset, comm.rank(), comm.size(), check);
    if (s.test->sample_size() != s.train.sample_size())
      throw DataError("the test data '" + opt.test_data + "' has samples of " +
                      std::to_string(s.test->sample_size()) + " values but the training data '" +
                      opt.data + "' has " + std::to_string(s.train.sample_size()) +
                      "; give a test set of the same image shape");
  }

  s.vae = std::make_unique<Vae>(vc, s.store);
  s.store.finalize();
  Rng init_rng(Rng::derive_seed(opt.seed, kInit));
  s.vae->init(init_rng);
  // Every rank initialised from the same seed; rank 0's values are the truth regardless.
  comm.broadcast(s.store.params(), 0);
  s.check_replicas("after start-up");

  AdamConfig ac;
  ac.lr = opt.lr;
  ac.beta1 = opt.adam_beta1;
  ac.beta2 = opt.adam_beta2;
  ac.eps = opt.adam_eps;
  ac.weight_decay = opt.weight_decay;
  s.adam = std::make_unique<Adam>(s.store.size(), ac);

  // Every rank runs the same number of steps: enough for the largest shard.
  const int64_t max_rows = comm.allreduce_max(s.train.rows());
  s.steps_per_epoch = (max_rows + opt.batch_size - 1) / opt.batch_size;

  Rng grid_rng(Rng::derive_seed(opt.seed, kGrid));
  s.grid_z.resize(static_cast<size_t>(opt.grid_size) * opt.grid_size * opt.latent_dim);
  grid_rng.fill_normal(s.grid_z.data(), s.grid_z.size());

  s.out = opt.out;
  if (comm.is_root()) {
    std::error_code ec;
    std::filesystem::create_directories(s.out, ec);
    if (ec)
      throw IoError("cannot create the run directory '" + opt.out + "': " + ec.message() +
                    "; choose another --out");
    std::ofstream cfg(s.out / "config.ini");
    cfg << format_options(opt);
    if (!cfg) throw IoError("cannot write " + (s.out / "config.ini").string());
    s.log = std::make_unique<MetricsLog>((s.out / "metrics.csv").string(), false);
    s.tty = opt.progress && isatty(STDOUT_FILENO);
    std::printf(
        "vae_dist: %d rank(s) x %d thread(s); %lld training rows (%lld on rank 0), %lld "
        "steps/epoch of %d x %d; %zu parameters\n",
        comm.size(), threads, static_cast<long long>(s.train.global_rows()),
        static_cast<long long>(s.train.rows()), static_cast<long long>(s.steps_per_epoch),
        comm.size(), opt.batch_size, s.store.size());
    std::fflush(stdout);
  }
}

Trainer::~Trainer() = default;

LossSums Trainer::State::evaluate(int epoch) {
  LossSums sums;
  if (!test) return sums;
  const int64_t n = test->rows();
  const int64_t eb = opt.eval_batch_size;
  const int L = opt.latent_dim;
  std::vector<float> x(static_cast<size_t>(std::min(n, eb)) * test->sample_size());
  std::vector<float> eps(static_cast<size_t>(std::min(n, eb)) * L);
  std::vector<int64_t> rows;
  Rng rng(Rng::derive_seed(opt.seed, kEvalEps, static_cast<uint64_t>(epoch),
                           static_cast<uint64_t>(comm.rank())));
  for (int64_t b0 = 0; b0 < n; b0 += eb) {
    const int64_t b = std::min(eb, n - b0);
    rows.resize(static_cast<size_t>(b));
    std::iota(rows.begin(), rows.end(), b0);
    test->gather(rows, x.data());
    rng.fill_normal(eps.data(), static_cast<size_t>(b) * L);
    sums +=
        vae->evaluate(ctx, static_cast<int>(b), x.data(), eps.data(), static_cast<float>(opt.beta));
  }
  double v[4] = {sums.loss, sums.recon, sums.kl, static_cast<double>(sums.count)};
  comm.allreduce_sum(std::span<double>(v, 4));
  return LossSums{v[0], v[1], v[2], static_cast<int64_t>(v[3])};
}

void Trainer::State::write_grids(int epoch) {
  if (!comm.is_root()) return;
  const auto& shape = train.sample_shape();
  // Images are drawn as [C, H, W]; flat [D] data becomes one row of pixels per sample
  // unless D is a square (e.g. 784 = 28 x 28).
  int c = 1, h = 1, w = static_cast<int>(train.sample_size());
  if (shape.size() == 3) {
    c = static_cast<int>(shape[0]), h = static_cast<int>(shape[1]), w = static_cast<int>(shape[2]);
  } else {
    const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(w))));
    if (side * side == w) h = w = side;
  }
  const int g = opt.grid_size, D = static_cast<int>(train.sample_size());
  char name[64];
  std::vector<float> images(static_cast<size_t>(g) * g * D);
  vae->decode_mean(ctx, g * g, grid_z.data(), images.data());
  std::snprintf(name, sizeof name, "samples_epoch%03d.png", epoch);
  write_image_grid((out / name).string(), images.data(), g * g, c, h, w, g);

  // Reconstructions: rows of inputs, each followed by a row of their reconstructions
  // (through the posterior mean z = mu).
  const Shard& src = test ? *test : train;
  const int pairs = std::max(1, g / 2);
  const int n = static_cast<int>(std::min<int64_t>(static_cast<int64_t>(pairs) * g, src.rows()));
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<float> x(static_cast<size_t>(n) * D), rec(static_cast<size_t>(n) * D);
  std::vector<float> mu(static_cast<size_t>(n) * opt.latent_dim);
  src.gather(rows, x.data());
  vae->encode(ctx, n, x.data(), mu.data(), nullptr);
  vae->decode_mean(ctx, n, mu.data(), rec.data());
  std::fill(images.begin(), images.end(), 0.0f);
  for (int i = 0; i < n; ++i) {
    const int r = i / g, col = i % g;
    std::copy_n(x.data() + static_cast<size_t>(i) * D, D,
                images.data() + (static_cast<size_t>(2 * r) * g + col) * D);
    std::copy_n(rec.data() + static_cast<size_t>(i) * D, D,
                images.data() + (static_cast<size_t>(2 * r + 1) * g + col) * D);
  }
  const int tiles = std::min(g * g, 2 * ((n + g - 1) / g) * g);
  std::snprintf(name, sizeof name, "recon_epoch%03d.png", epoch);
  write_image_grid((out / name).string(), images.data(), tiles, c, h, w, g);
}

double Trainer::State::iw_nll() {
  if (!test || opt.iw_samples <= 0) return std::numeric_limits<double>::quiet_NaN();
  const int64_t n = test->rows();
  // k decoder passes per batch: keep the batch moderate so memory stays small.
  const int64_t eb = std::min<int64_t>(opt.eval_batch_size, 500);
  std::vector<float> x(static_cast<size_t>(std::min(n, eb)) * test->sample_size());
  std::vector<int64_t> rows;
  Rng rng(Rng::derive_seed(opt.seed, kIw, static_cast<uint64_t>(comm.rank())));
  double v[2] = {0, 0};
  for (int64_t b0 = 0; b0 < n; b0 += eb) {
    const int64_t b = std::min(eb, n - b0);
    rows.resize(static_cast<size_t>(b));
    std::iota(rows.begin(), rows.end(), b0);
    test->gather(rows, x.data());
    v[0] += vae->iw_log_likelihood_sum(ctx, static_cast<int>(b), x.data(), opt.iw_samples, rng);
    v[1] += static_cast<double>(b);
  }
  comm.allreduce_sum(std::span<double>(v, 2));
  return -v[0] / v[1];
}

TrainSummary Trainer::run() {
  State& s = *s_;
  const Options& opt = s.opt;
  const Comm& comm = s.comm;
  const int B = opt.batch_size, L = opt.latent_dim;
  const int64_t D = s.train.sample_size();
  // Rows of every rank's shard: each step's global sample count follows without talking.
  std::vector<int64_t> shard_sizes(static_cast<size_t>(comm.size()));
  for (int r = 0; r < comm.size(); ++r)
    shard_sizes[static_cast<size_t>(r)] = shard_rows(s.train.global_rows(), r, comm.size()).size();

  std::vector<float> x(static_cast<size_t>(B) * D), eps(static_cast<size_t>(B) * L);
  std::vector<int64_t> perm(static_cast<size_t>(s.train.rows()));
  Rng eps_rng(Rng::derive_seed(opt.seed, kEps, static_cast<uint64_t>(comm.rank())));

  TrainSummary summary;
  const auto t_run = Clock::now();
  double train_seconds = 0;
  int64_t train_samples = 0;
  const int64_t total_steps = opt.max_steps > 0
                                  ? std::min<int64_t>(opt.max_steps, s.steps_per_epoch * opt.epochs)
                                  : s.steps_per_epoch * opt.epochs;
  bool stop = false;

  for (int epoch = 1; epoch <= opt.epochs && !stop; ++epoch) {
    std::iota(perm.begin(), perm.end(), 0);
    Rng shuffle(Rng::derive_seed(opt.seed, kShuffle, static_cast<uint64_t>(epoch),
                                 static_cast<uint64_t>(comm.rank())));
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[shuffle.below(i)]);

    LossSums interval, epoch_sums;
    auto t_interval = Clock::now();
    double interval_seconds = 0;
    for (int64_t st = 0; st < s.steps_per_epoch; ++st) {
      const auto t0 = Clock::now();
      const int64_t local = s.rows_in_step(s.train.rows(), st);
      int64_t global = 0;
      for (int64_t n : shard_sizes) global += s.rows_in_step(n, st);
      const float beta = s.beta_at(s.step);

      s.train.gather(std::span<const int64_t>(perm.data() + st * B, static_cast<size_t>(local)),
                     x.data());
      eps_rng.fill_normal(eps.data(), static_cast<size_t>(local) * L);
      interval += s.vae->train_step(s.ctx, static_cast<int>(local), x.data(), eps.data(), beta,
                                    1.0f / static_cast<float>(global));
      comm.allreduce_sum(s.store.grads());
      s.adam->step(s.store.params(), s.store.grads(), opt.lr);
      ++s.step;
      s.samples += global;
      interval_seconds += seconds_since(t0);
      train_samples += global;

      if (opt.checksum_every > 0 && s.step % opt.checksum_every == 0)
        s.check_replicas("during training");
      stop = opt.max_steps > 0 && s.step >= opt.max_steps;
      const bool last = st + 1 == s.steps_per_epoch || stop;
      if (s.step % opt.log_every == 0 || last) {
        double v[4] = {interval.loss, interval.recon, interval.kl,
                       static_cast<double>(interval.count)};
        comm.allreduce_sum(std::span<double>(v, 4));
        epoch_sums += LossSums{v[0], v[1], v[2], static_cast<int64_t>(v[3])};
        const double n = std::max(1.0, v[3]);
        const double ips = v[3] / std::max(1e-9, interval_seconds);
        train_seconds += interval_seconds;
        if (comm.is_root()) {
          s.log->write(
              {"train", epoch, s.step, s.samples, v[0] / n, v[1] / n, v[2] / n, opt.lr, ips});
          const double eta = static_cast<double>(total_steps - s.step) * seconds_since(t_run) /
                             static_cast<double>(s.step);
          std::printf(
              "%sepoch %d/%d  step %lld/%lld  loss %.3f  recon %.3f  kl %.3f  "
              "%.0f img/s  ETA %s%s",
              s.tty ? "\r" : "", epoch, opt.epochs, static_cast<long long>(s.step),
              static_cast<long long>(total_steps), v[0] / n, v[1] / n, v[2] / n, ips,
              format_duration(eta).c_str(), s.tty ? "   " : "\n");
          std::fflush(stdout);
        }
        interval = LossSums{};
        interval_seconds = 0;
        t_interval = Clock::now();
      }
      if (stop) break;
    }
    (void)t_interval;

    const LossSums test = s.evaluate(epoch);
    s.write_grids(epoch);
    summary.epochs = epoch;
    summary.train_loss = epoch_sums.loss / std::max<int64_t>(1, epoch_sums.count);
    summary.test_loss = std::numeric_limits<double>::quiet_NaN();
    if (test.count > 0) {
      const double n = static_cast<double>(test.count);
      summary.test_loss = test.loss / n;
      summary.test_recon = test.recon / n;
      summary.test_kl = test.kl / n;
      if (comm.is_root()) {
        s.log->write({"test", epoch, s.step, s.samples, summary.test_loss, summary.test_recon,
                      summary.test_kl, opt.lr, 0.0});
        std::printf("%sepoch %d/%d  test loss %.4f  recon %.4f  kl %.4f  (%lld images)\n",
                    s.tty ? "\n" : "", epoch, opt.epochs, summary.test_loss, summary.test_recon,
                    summary.test_kl, static_cast<long long>(test.count));
        std::fflush(stdout);
      }
    } else if (comm.is_root() && s.tty) {
      std::printf("\n");
    }
  }

  summary.iw_nll = s.iw_nll();
  if (comm.is_root() && std::isfinite(summary.iw_nll)) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    s.log->write(
        {"test_iw", summary.epochs, s.step, s.samples, summary.iw_nll, nan, nan, opt.lr, 0.0});
    std::printf("test -log p(x) (importance-weighted, k=%d): %.4f nats\n", opt.iw_samples,
                summary.iw_nll);
  }
  s.check_replicas("at the end of training");
  summary.steps = s.step;
  summary.samples = s.samples;
  summary.seconds = seconds_since(t_run);
  summary.train_images_per_s = static_cast<double>(train_samples) / std::max(1e-9, train_seconds);
  return summary;
}

}  // namespace vd
