// vae_bench: training-step throughput of a VAE, the MLP by default or a conv model given as
// layer lists (images/s, GFLOP/s, share of the oneDNN inner-product or convolution peak
// measured in the same run, communication share, peak RSS per rank).
// Run on one rank (`vae_bench`) or P ranks (`mpirun -np P vae_bench`). Prints figures; asserts
// nothing.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "app/main_support.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/version.hpp"
#include "nn/context.hpp"
#include "nn/conv.hpp"
#include "nn/fma_peak.hpp"
#include "nn/linear.hpp"
#include "nn/param_store.hpp"
#include "nn/peak.hpp"
#include "nn/precision.hpp"
#include "optim/adam.hpp"
#include "parallel/comm.hpp"
#include "parallel/cost_model.hpp"
#include "parallel/grad_sync.hpp"
#include "vae/model.hpp"

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int> parse_hidden(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoi(item));
  if (out.empty()) throw vd::ConfigError("--hidden needs at least one width, e.g. 400");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Options first, without MPI: --help, --version and a usage error are the same on every rank.
  if (vd::app::asks_for_version(argc, argv)) {
    vd::app::print_once(vd::version_text("vae_bench"));
    return 0;
  }
  std::optional<vd::MpiSession> mpi;
  try {
    int batch = 128, latent = 20, data_dim = 784, threads = 1, steps = 50, repeats = 7;
    double peak_seconds = 2.0;
    bool no_sync = false;
    std::string hidden_text = "400", encoder, decoder, shape_text = "1x28x28",
                precision_text = "f32", latent_shape;
    bool impl = false, plain = false, project = false;
    po::options_description desc(
        "vae_bench: training-step throughput of the MLP VAE on synthetic data held in memory\n"
        "usage: [mpirun -np P] vae_bench [options]\noptions");
    desc.add_options()("help", "print this help")(
        "batch-size", po::value(&batch)->default_value(batch), "images per rank per step")(
        "data-dim", po::value(&data_dim)->default_value(data_dim), "pixels per image (D)")(
        "hidden", po::value(&hidden_text)->default_value(hidden_text), "encoder widths")(
        "encoder", po::value(&encoder), "encoder layer list (as vae_dist --encoder); a conv model")(
        "decoder", po::value(&decoder), "decoder layer list (as vae_dist --decoder)")(
        "shape", po::value(&shape_text)->default_value(shape_text),
        "image shape CxHxW of a conv model (--data-dim is the MLP's)")(
        "impl", po::bool_switch(&impl), "print oneDNN's implementation of every conv layer")(
        "plain-activations", po::bool_switch(&plain),
        "convolutions keep activations in plain nchw instead of oneDNN's choice (to measure "
        "what blocked layouts are worth)")("latent-dim", po::value(&latent)->default_value(latent),
                                           "latent dimension (L)")(
        "latent-shape", po::value(&latent_shape),
        "a spatial latent CxHxW, as vae_dist --latent-shape (conv heads; sets --latent-dim)")(
        "threads", po::value(&threads)->default_value(threads), "OpenMP threads per rank")(
        "precision", po::value(&precision_text)->default_value(precision_text),
        "f32|bf16|auto, as vae_dist --precision (bf16: fc and conv layers in bfloat16, "
        "transposed convolutions in f32)")("steps", po::value(&steps)->default_value(steps),
                                           "timed steps per repetition")(
        "repeats", po::value(&repeats)->default_value(repeats), "repetitions (median reported)")(
        "peak-seconds", po::value(&peak_seconds)->default_value(peak_seconds),
        "time spent measuring the inner-product peak")(
        "no-sync", po::bool_switch(&no_sync),
        "skip the gradient sum over ranks: the machine's ceiling for P ranks computing at once")(
        "project", po::bool_switch(&project),
        "also measure the link between rank 0 and the last rank (ping-pong latency and "
        "bandwidth) and the allreduce of this model's gradient, and project step time and "
        "scaling efficiency for 2 to 64 nodes (one rank per node, ring allreduce)")(
        "version", "print the versions of vae_bench, oneDNN, HDF5 and MPI and exit");
    po::variables_map vm;
    try {
      po::store(po::parse_command_line(argc, argv, desc), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      vd::app::usage_error(std::string(e.what()) + " (see vae_bench --help)");
    }
    if (vm.count("help")) {
      std::ostringstream help;
      help << desc << "\n";
      vd::app::print_once(help.str());
      return 0;
    }
    if (batch < 1 || steps < 1 || repeats < 1 || threads < 1 || latent < 1 || data_dim < 1)
      vd::app::usage_error("sizes, --threads, --steps and --repeats must be positive");

    std::string precision_note;
    const vd::Precision precision = vd::resolve_precision(precision_text, &precision_note);

    mpi.emplace(&argc, &argv);
    vd::Comm comm;
    omp_set_num_threads(threads);

    if (plain) vd::set_conv_layouts(vd::ConvLayouts::Plain);
    vd::Context ctx;
    const std::vector<int> hidden = parse_hidden(hidden_text);
    vd::ModelConfig cfg = vd::ModelConfig::mlp(data_dim, hidden, latent);
    const bool conv_model = !encoder.empty() || !decoder.empty();
    if (conv_model) {
      if (shape_text.find('x') == std::string::npos || !vd::parse_shape_text(shape_text, cfg.data))
        throw vd::ConfigError("--shape needs CxHxW (e.g. 1x28x28), CxL or CxDxHxW");
      data_dim = static_cast<int>(cfg.data.size());
      cfg.encoder = encoder;
      cfg.decoder = decoder;
    }
    if (!latent_shape.empty()) {
      if (latent_shape.find('x') == std::string::npos ||
          !vd::parse_shape_text(latent_shape, cfg.latent))
        throw vd::ConfigError("--latent-shape needs CxHxW (e.g. 4x8x8), CxL or CxDxHxW");
      cfg.latent_dim = latent = static_cast<int>(cfg.latent.size());
    }
    cfg.precision = precision;
    vd::ParamStore store;
    vd::Vae vae(cfg, store);
    store.finalize();
    vd::Rng rng(1);
    vae.init(rng);
    vd::Adam adam(store.size(), vd::AdamConfig{});
    // --no-sync keeps private replicas: every rank runs its own full Adam step.
    std::optional<vd::GradientSync> sync;
    if (!no_sync) sync.emplace(comm, store, adam);

    // A synthetic uint8 shard of 8 batches, converted per batch like Shard::gather does.
    const size_t D = static_cast<size_t>(data_dim), B = static_cast<size_t>(batch);
    std::vector<uint8_t> shard(8 * B * D);
    for (auto& v : shard) v = static_cast<uint8_t>(rng.below(256));
    std::vector<float> x(B * D), eps(B * static_cast<size_t>(latent));
    const int global = batch * comm.size();

    double comm_seconds = 0;
    auto one_step = [&](int s) {
      const uint8_t* src = shard.data() + static_cast<size_t>(s % 8) * B * D;
      for (size_t i = 0; i < B * D; ++i) x[i] = static_cast<float>(src[i]) * (1.0f / 255.0f);
      rng.fill_normal(eps.data(), eps.size());
      // As the trainer does: across nodes the gradient sum starts during backward.
      if (sync) ctx.grad_listener = &*sync;
      vae.train_step(ctx, vd::Batch{batch, x.data(), nullptr, eps.data()}, 1.0f,
                     1.0f / static_cast<float>(global));
      ctx.grad_listener = nullptr;
      const auto t0 = Clock::now();
      if (no_sync)
        adam.step(store.params(), store.grads(), 1e-3);
      else
        sync->update(1e-3);
      comm_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    };

    for (int s = 0; s < 10; ++s) one_step(s);  // warm-up: primitive creation, caches
    std::vector<double> step_ms, comm_share;
    for (int r = 0; r < repeats; ++r) {
      comm.barrier();
      comm_seconds = 0;
      const auto t0 = Clock::now();
      for (int s = 0; s < steps; ++s) one_step(s);
      double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      // The slowest rank sets the pace of a synchronous step.
      double v[2] = {secs, comm_seconds};
      MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      step_ms.push_back(1e3 * v[0] / steps);
      comm_share.push_back(v[1] / v[0]);
    }
    const double ms = median(step_ms);
    // Where a step's time goes, per kind of layer: one more pass of `steps` steps, timed per
    // node (the clock calls cost microseconds against milliseconds of compute).
    vd::StepProfile profile;
    ctx.profile = &profile;
    const auto p0 = Clock::now();
    for (int s = 0; s < steps; ++s) one_step(s);
    const double profiled_ms =
        1e3 * std::chrono::duration<double>(Clock::now() - p0).count() / steps;
    ctx.profile = nullptr;
    // Cost-model inputs, measured with nothing else running: the link between rank 0 and the
    // last rank (another host when there is one rank per host), the blocking allreduce of this
    // gradient, and the forward pass alone (the part of a step the sum cannot overlap).
    double t_small = 0, t_large = 0, t_allreduce = 0, forward_ms = 0;
    constexpr size_t kLarge = size_t{4} << 20;
    if (project && comm.size() > 1) {
      t_small = vd::pingpong_seconds(comm, 0, comm.size() - 1, 8, 200);
      t_large = vd::pingpong_seconds(comm, 0, comm.size() - 1, kLarge, 20);
      t_allreduce = vd::allreduce_seconds(comm, store.size(), 50);
      std::vector<double> fwd;
      for (int r = 0; r < 20; ++r) {
        const auto t0 = Clock::now();
        vae.evaluate(ctx, vd::Batch{batch, x.data(), nullptr, eps.data()}, 1.0f);
        fwd.push_back(1e3 * std::chrono::duration<double>(Clock::now() - t0).count());
      }
      forward_ms = median(fwd);
    }
    // FLOPs of one step: forward, backward-data (skipped for the first layer) and
    // backward-weights of every layer, each 2*I*O per sample.
    const double fwd = vae.flops_per_sample_forward();
    double first = 0;  // the first parameter layer skips backward-data
    for (const vd::Layer* l : vae.encoder().layers())
      if ((first = l->flops_per_sample()) > 0) break;
    const double step_flops = static_cast<double>(batch) * (3 * fwd - first);
    const double gflops = step_flops / (ms * 1e-3) / 1e9;
    const double ips = global / (ms * 1e-3);

    // Peak references on rank 0 alone, after the timed runs, so they do not compete.
    double peak = 0, peak_train = 0, peak_conv = 0;
    std::vector<vd::ConvShape> convs;
    for (const vd::Graph* graph : {&vae.encoder(), &vae.decoder()})
      for (vd::Layer* l : graph->all_layers())
        if (auto* c = dynamic_cast<vd::Conv2d*>(l)) {
          convs.push_back(c->conv_shape(batch));
          if (impl && comm.is_root())
            std::printf("%s: %s\n", c->name().c_str(), c->impl_info(ctx, batch).c_str());
        }
    comm.barrier();
    // The time the model's oneDNN primitives take on their own (each conv and fc layer
    // forward + backward, the heads included): the step's floor without any framework.
    double primitives_ms = 0;
    if (comm.is_root() && !convs.empty()) {
      peak_conv = vd::measure_conv_train_peak_gflops(ctx, convs, peak_seconds);
      double conv_flops = 0;
      for (const auto& c : convs) {
        const double small = c.transposed ? double(c.ic) * c.ih * c.iw : double(c.oc) * c.oh * c.ow;
        conv_flops += 6.0 * c.batch * small * (c.transposed ? c.oc : c.ic) * c.kernel * c.kernel;
      }
      primitives_ms = 1e3 * conv_flops / (peak_conv * 1e9);
      std::vector<std::tuple<int, int, vd::Precision>> fcs;  // the heads included
      for (const vd::Graph* graph : {&vae.encoder(), &vae.decoder()})
        for (vd::Layer* l : graph->all_layers())
          if (auto* f = dynamic_cast<vd::Linear*>(l))
            fcs.emplace_back(f->in(), f->out(), f->precision());
      for (const auto& [in, out, fc_prec] : fcs) {
        const double g = vd::measure_inner_product_gflops(
            ctx, batch, in, out, vd::InnerProductPass::All, peak_seconds / 4, fc_prec);
        primitives_ms += 1e3 * 6.0 * batch * in * out / (g * 1e9);
      }
    }
    if (comm.is_root() && !conv_model) {
      peak = vd::measure_inner_product_peak_gflops(ctx, batch, data_dim, hidden[0], peak_seconds,
                                                   precision);
      peak_train = vd::measure_inner_product_train_peak_gflops(ctx, batch, data_dim, hidden[0],
                                                               peak_seconds, precision);
    }
    // The core's physical ceiling at its clock now, for f32 and (where it exists) bf16.
    vd::FmaPeak fma_f32, fma_bf16;
    if (comm.is_root()) {
      fma_f32 = vd::measure_fma_peak(vd::Precision::F32, std::min(peak_seconds, 0.5));
      fma_bf16 = vd::measure_fma_peak(vd::Precision::BF16, std::min(peak_seconds, 0.5));
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::vector<long> rss(static_cast<size_t>(comm.size()));
    long mine = ru.ru_maxrss;  // KiB on Linux
    MPI_Gather(&mine, 1, MPI_LONG, rss.data(), 1, MPI_LONG, 0, MPI_COMM_WORLD);

    if (comm.is_root()) {
      if (!precision_note.empty()) std::printf("%s\n", precision_note.c_str());
      if (conv_model)
        std::printf("vae_bench: conv VAE %s, encoder '%s', decoder '%s', latent %d, %s activations",
                    cfg.data.text().c_str(), encoder.c_str(), decoder.c_str(), latent,
                    plain ? "plain nchw" : "oneDNN-chosen (blocked)");
      else
        std::printf("vae_bench: MLP VAE %d-%s-%d", data_dim, hidden_text.c_str(), latent);
      std::printf(
          ", batch %d per rank, %d rank(s) x %d thread(s), %d repetitions of %d steps, "
          "precision=%s\n",
          batch, comm.size(), threads, repeats, steps, vd::precision_name(precision));
      if (precision != vd::Precision::F32) std::printf("%s", vae.summary().c_str());
      std::printf("step_ms=%.3f images_per_s=%.0f gflops=%.2f flops_per_step=%.4g\n", ms, ips,
                  gflops * comm.size(), step_flops);
      for (const auto* f : {&fma_f32, &fma_bf16})
        if (f->gflops > 0)
          std::printf("physical_peak_%s_gflops=%.2f (%s, %d chains, %.0f flop each, 1 thread)\n",
                      f == &fma_f32 ? "f32" : "bf16", f->gflops, f->instruction.c_str(),
                      f->accumulators, f->flops_per_op);
      const vd::FmaPeak& own = precision == vd::Precision::BF16 ? fma_bf16 : fma_f32;
      if (own.gflops > 0)
        std::printf("share_of_physical_peak=%.1f%% (per rank and thread, of %s)\n",
                    100 * gflops / (own.gflops * threads), own.instruction.c_str());
      if (!conv_model) {
        std::printf("peak_inner_product_fwd_gflops=%.2f (oneDNN %dx%d->%d forward, %s, 1 rank)\n",
                    peak, batch, data_dim, hidden[0], vd::precision_name(precision));
        std::printf("peak_inner_product_train_gflops=%.2f (forward+backward of the same layer)\n",
                    peak_train);
        std::printf("share_of_fwd_peak=%.1f%% share_of_train_peak=%.1f%% (per rank)\n",
                    100 * gflops / peak, 100 * gflops / peak_train);
      }
      if (peak_conv > 0)
        std::printf(
            "peak_conv_train_gflops=%.2f (oneDNN alone: the model's %zu conv layers, forward + "
            "backward, format any, 1 rank) share_of_conv_peak=%.1f%% (per rank)\n",
            peak_conv, convs.size(), 100 * gflops / peak_conv);
      if (primitives_ms > 0)
        std::printf(
            "primitives_alone_ms=%.3f share_of_primitives=%.1f%% (every conv and fc layer of "
            "the model timed alone, forward + backward, against the whole step)\n",
            primitives_ms, 100 * primitives_ms / ms);
      // The profiled pass, rank 0's view: convolutions and fc layers (oneDNN's GEMM-like
      // primitives) against everything else (norms, activations, attention, merges, reorders,
      // the loss, the gradient sum and Adam).
      double inside = 0, profiled_total = 0;
      std::printf("step_profile_ms (per step, %d steps, whole step %.3f ms):", steps, profiled_ms);
      for (const auto& [kind, secs] : profile.seconds) {
        const double per = 1e3 * secs / steps;
        profiled_total += per;
        const std::string k = kind.substr(0, kind.find(' '));
        if (k == "conv" || k == "convt" || k == "fc") inside += per;
        std::printf(" %s=%.3f", kind.c_str(), per);
      }
      std::printf(" other=%.3f\n", profiled_ms - profiled_total);
      std::printf("share_outside_conv_and_fc=%.1f%% (of the profiled step)\n",
                  100 * (1 - inside / profiled_ms));
      std::printf(
          "sync_share=%.1f%% (median share of step time in the gradient sum and Adam: %s)\n",
          100 * median(comm_share), sync ? sync->method().c_str() : "none");
      if (project && comm.size() > 1) {
        const vd::Link link = vd::fit_link(t_small, kLarge, t_large);
        const double bytes = static_cast<double>(store.size() * sizeof(float));
        const double compute = 1e-3 * ms * (1 - median(comm_share));
        std::printf(
            "link rank 0 <-> rank %d: latency_us=%.1f bandwidth_gb_per_s=%.2f (ping-pong, 8 B "
            "and 4 MiB); allreduce of the %.2f MB gradient over %d ranks: %.3f ms (ring model "
            "%.3f ms)\n",
            comm.size() - 1, 1e6 * link.latency_s, 1e-9 * link.bandwidth_bytes_per_s, bytes / 1e6,
            comm.size(), 1e3 * t_allreduce,
            1e3 * vd::ring_allreduce_seconds(comm.size(), bytes, link));
        std::printf(
            "projection, one rank per node: compute_ms=%.3f (step minus exposed sync) "
            "forward_ms=%.3f; serial = compute + ring allreduce, overlapped = max(compute, "
            "forward + ring allreduce)\n",
            1e3 * compute, forward_ms);
        std::printf(
            "nodes  allreduce_ms  step_ms_serial  eff_serial  step_ms_overlap  eff_overlap\n");
        for (const auto& pr :
             vd::project({2, 3, 8, 16, 32, 64}, bytes, compute, 1e-3 * forward_ms, link))
          std::printf("%5d  %12.3f  %14.3f  %9.1f%%  %15.3f  %10.1f%%\n", pr.nodes, 1e3 * pr.comm_s,
                      1e3 * pr.step_serial_s, 100 * pr.efficiency_serial, 1e3 * pr.step_overlap_s,
                      100 * pr.efficiency_overlap);
      }
      std::printf("peak_rss_mb_per_rank=");
      for (size_t r = 0; r < rss.size(); ++r)
        std::printf("%s%.1f", r ? "," : "", static_cast<double>(rss[r]) / 1024.0);
      std::printf("\n");
    }
  } catch (const vd::ConfigError& e) {
    vd::app::fail(std::string(e.what()) + " (see vae_bench --help)", 2);
  } catch (const std::exception& e) {
    vd::app::fail(e.what());
  }
  return 0;
}
