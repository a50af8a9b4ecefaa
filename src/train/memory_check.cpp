// The start-up memory check: the lower bound of a run's allocations per rank, the memory this
// rank can have, the refusal that names the option, and the message for a bad_alloc.
#include "train/memory_check.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "data/shard.hpp"
#include "parallel/comm.hpp"
#include "vae/model.hpp"

namespace vd {

namespace {

constexpr double kFloat = 4, kDouble = 8;

// The number of "Key:   N kB" in /proc/meminfo or /proc/self/status, in bytes; -1 if absent.
double proc_kb(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream rest(line.substr(key.size() + 1));
      double kb = -1;
      if (rest >> kb) return kb * 1024.0;
    }
  return -1;
}

// A number in a cgroup file; -1 for "max", a missing file or a v1 "no limit" (a huge value).
double cgroup_value(const char* file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text == "max") return -1;
  try {
    const double v = std::stod(text);
    return v > 0 && v < 1e18 ? v : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

// The option text as a user wrote it: --encoder 'fc 999999999'.
std::string option_text(const std::string& name, const std::string& value) {
  const bool plain = !value.empty() && value.find_first_of(" ,'()") == std::string::npos;
  return "--" + name + " " + (plain ? value : "'" + value + "'");
}

// "400,200": --hidden as written.
std::string widths_text(const std::vector<int>& widths) {
  std::string text;
  for (int h : widths) {
    if (!text.empty()) text += ',';
    text += std::to_string(h);
  }
  return text;
}

std::string count_text(double v) {
  char buf[32];
  if (v < 1e10)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// The model's largest parameter, and the option that sizes it: --latent-dim when its largest
// dimension is the latent dimension, else the layer list of its network (--hidden for the MLP).
void largest_parameter(const Options& opt, const LatentModel& model, const ParamStore& store,
                       MemoryInputs& in) {
  const ParamStore::Entry* big = nullptr;
  for (const auto& e : store.entries())
    if (big == nullptr || e.size > big->size) big = &e;
  if (big == nullptr) return;
  in.largest_param = big->name + " " + shape_text(big->shape);
  const int64_t widest = *std::max_element(big->shape.begin(), big->shape.end());
  const int64_t L = model.config().latent_dim;
  const bool encoder = big->name.rfind("encoder.", 0) == 0;
  const std::string& layers = encoder ? opt.encoder : opt.decoder;
  if (widest == L && L > 1)
    in.param_option = opt.latent_shape.empty() ? "--latent-dim " + std::to_string(L)
                                               : option_text("latent-shape", opt.latent_shape);
  else if (!layers.empty())
    in.param_option = option_text(encoder ? "encoder" : "decoder", layers);
  else {
    in.param_option = option_text("hidden", widths_text(opt.hidden));
  }
}

}  // namespace

std::string memory_text(double bytes) {
  char buf[32];
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  double v = bytes;
  while (v >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

int64_t iw_rows_per_batch(int64_t eval_batch_size, int64_t k) {
  const int64_t fit = kIwWeightsBytes / (static_cast<int64_t>(kDouble) * std::max<int64_t>(1, k));
  return std::max<int64_t>(1, std::min({eval_batch_size, int64_t{500}, fit}));
}

std::vector<MemoryPart> memory_parts(const MemoryInputs& in) {
  std::vector<MemoryPart> parts;
  const double D = static_cast<double>(in.data_size), L = static_cast<double>(in.latent_dim),
               K = static_cast<double>(in.classes);
  // Per row of any batch the model runs: every graph value's dst, and the Vae's workspaces
  // (z, the heads' gradients, diff_z, the clamped logvar: 5 L; diff_out: D; the one-hot: K).
  const double model_row = in.activation_floats + D + 5 * L + K;
  // Parameters, gradients and Adam's two moments.
  parts.push_back({in.param_option,
                   "the model's " + count_text(in.param_floats) +
                       " parameters with their gradients and Adam's two moments, 16 bytes each" +
                       (in.largest_param.empty() ? "" : "; the largest is " + in.largest_param),
                   4 * kFloat * in.param_floats});
  // The fixed prior draws of the sample grids [G*G, L].
  const double grid = static_cast<double>(in.grid_size) * static_cast<double>(in.grid_size);
  parts.push_back({"--latent-dim " + std::to_string(in.latent_dim),
                   "the sample grids' fixed prior draws, " + count_text(grid) + " x " +
                       count_text(L) + " floats",
                   kFloat * grid * L});
  // A batch part is named by its rows' option, or by --latent-dim when most of its floats are
  // latent ones (eps, the workspaces and the two heads: 8 L a row) and the latent dimension is
  // further above its default (20) than the rows are above theirs.
  const auto rows_option = [&](const std::string& option, double rows_ratio, double latent_floats,
                               double floats) {
    return latent_floats > floats / 2 && L / 20 > rows_ratio
               ? "--latent-dim " + std::to_string(in.latent_dim)
               : option;
  };
  // The training step: x [B, D], eps [B, L] and the labels, and the model's rows.
  const double B = static_cast<double>(in.batch_size);
  const double train_row = kFloat * (model_row + D + L + 1);
  parts.push_back({rows_option("--batch-size " + std::to_string(in.batch_size), B / 128, 8 * L,
                               train_row / kFloat),
                   "the training batch: " + count_text(B) + " rows x " + memory_text(train_row) +
                       " of activations and buffers",
                   B * train_row});
  // Evaluation: eps [eval batch, L] as allocated, x and the model's rows for the rows a batch
  // holds (at most the shard's).
  if (in.eval_rows > 0) {
    const double E = static_cast<double>(in.eval_batch_size);
    const double rows = static_cast<double>(std::min(in.eval_batch_size, in.eval_rows));
    parts.push_back({rows_option("--eval-batch-size " + std::to_string(in.eval_batch_size),
                                 E / 1000, E * L + rows * 8 * L, E * L + rows * (model_row + D)),
                     "the evaluation batch: noise for " + count_text(E) + " rows x " +
                         count_text(L) + " floats, and " + count_text(rows) + " rows x " +
                         memory_text(kFloat * (model_row + D)) + " of activations and buffers",
                     kFloat * (E * L + rows * (model_row + D))});
  }
  // The importance-weighted bound: log-weights [rows, k] in double, mu, logvar and eps copies.
  if (in.iw_samples > 0 && in.iw_test_rows > 0) {
    const double k = static_cast<double>(in.iw_samples);
    const double rows = static_cast<double>(
        std::min(iw_rows_per_batch(in.eval_batch_size, in.iw_samples), in.iw_test_rows));
    parts.push_back({"--iw-samples " + std::to_string(in.iw_samples),
                     "the importance-weighted bound's log-weights of " + count_text(rows) +
                         " row(s) x " + count_text(k) + " samples, 8 bytes each",
                     rows * (kDouble * k + kFloat * (3 * L + model_row + D))});
  }
  return parts;
}

double memory_lower_bound(const std::vector<MemoryPart>& parts) {
  // parts[0], parts[1]: parameters and grid draws; the rest are batches, one at a time.
  double fixed = 0, batch = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i < 2)
      fixed += parts[i].bytes;
    else
      batch = std::max(batch, parts[i].bytes);
  }
  return fixed + batch;
}

MemoryAvailable memory_available() {
  MemoryAvailable m;
  m.bytes = proc_kb("/proc/meminfo", "MemAvailable");
  m.source = "MemAvailable in /proc/meminfo";
  if (m.bytes < 0) {
    m.bytes = static_cast<double>(sysconf(_SC_AVPHYS_PAGES)) *
              static_cast<double>(sysconf(_SC_PAGE_SIZE));
    m.source = "the free physical memory";
  }
  // A container's or a Slurm job's limit (cgroup v2, else v1), less what it uses already.
  for (const auto& [limit, usage] :
       {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                  "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const double cap = cgroup_value(limit), used = std::max(0.0, cgroup_value(usage));
    if (cap > 0 && cap - used < m.bytes) {
      m.bytes = std::max(0.0, cap - used);
      m.source = std::string("the cgroup's limit (") + limit + ") less its usage";
    }
  }
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    const double left =
        static_cast<double>(as.rlim_cur) - std::max(0.0, proc_kb("/proc/self/status", "VmSize"));
    if (left < m.bytes) {
      m.bytes = std::max(0.0, left);
      m.source = "the address-space limit (ulimit -v) less the address space in use";
    }
  }
  return m;
}

void check_memory(const std::vector<MemoryPart>& parts, double available,
                  const std::string& available_source) {
  const double need = memory_lower_bound(parts);
  if (need <= available) return;
  const auto largest = std::max_element(
      parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.bytes < b.bytes; });
  const std::string name = largest->option.substr(0, largest->option.find(' '));
  const bool layers = name == "--encoder" || name == "--decoder" || name == "--hidden";
  throw ConfigError(largest->option + " needs at least " + memory_text(largest->bytes) +
                    " per rank (" + largest->what + "), and the run at least " + memory_text(need) +
                    " per rank, more than the " + memory_text(available) +
                    " of memory available to it (" + available_source + "); " +
                    (layers ? "give " + name + " narrower layers" : "lower " + name) +
                    ", or run where more memory is free");
}

void check_run_memory(const Options& opt, const LatentModel& model, const ParamStore& store,
                      const Shard* val, const Shard* test, const Comm& comm) {
  MemoryInputs in;
  in.param_floats = static_cast<double>(store.size());
  const ModelConfig& vc = model.config();
  for (const Graph* g : model.graphs())
    for (const Graph::Node& node : g->nodes())
      in.activation_floats += static_cast<double>(node.out.size());
  in.data_size = vc.data.size();
  in.latent_dim = vc.latent_dim;
  in.classes = vc.classes;
  in.batch_size = opt.batch_size;
  in.eval_batch_size = opt.eval_batch_size;
  for (const Shard* sh : {val, test})
    if (sh) in.eval_rows = std::max(in.eval_rows, sh->rows());
  in.iw_samples = opt.iw_samples;
  in.iw_test_rows = test ? test->rows() : 0;
  in.grid_size = opt.grid_size;
  largest_parameter(opt, model, store, in);
  std::vector<MemoryPart> parts = memory_parts(in);
  // The same figures on every rank: each part's largest, the smallest memory available.
  for (MemoryPart& p : parts)
    p.bytes = static_cast<double>(comm.allreduce_max(
        static_cast<int64_t>(std::min(p.bytes, static_cast<double>(INT64_MAX / 2)))));
  const MemoryAvailable avail = memory_available();
  const int sharing = std::max(1, comm.local_size());
  const double mine = avail.bytes / sharing;
  const double least = static_cast<double>(
      comm.allreduce_min(static_cast<int64_t>(std::min(mine, static_cast<double>(INT64_MAX / 2)))));
  check_memory(
      parts, least,
      avail.source + (sharing > 1 ? ", shared by the node's " + std::to_string(sharing) + " ranks"
                                  : std::string()));
}

std::string start_up_out_of_memory(const Options& opt) {
  // Each option that sizes memory, and how far it is above its default.
  struct Size {
    std::string text;
    double ratio;
  };
  std::vector<Size> sizes;
  const Options defaults;
  const auto add = [&](const std::string& text, double value, double usual) {
    sizes.push_back({text, value / std::max(1.0, usual)});
  };
  add("--batch-size " + std::to_string(opt.batch_size), opt.batch_size, defaults.batch_size);
  add("--eval-batch-size " + std::to_string(opt.eval_batch_size), opt.eval_batch_size,
      defaults.eval_batch_size);
  add("--latent-dim " + std::to_string(opt.latent_dim), opt.latent_dim, defaults.latent_dim);
  if (opt.iw_samples > 0)
    add("--iw-samples " + std::to_string(opt.iw_samples), opt.iw_samples, 100);
  if (opt.classes > 0) add("--classes " + std::to_string(opt.classes), opt.classes, 10);
  // The widest number in a layer list (units or channels), against the MLP's 400.
  const auto widest = [](const std::string& text) {
    double top = 0, v = 0;
    bool in_number = false;
    for (const char c : text + " ") {
      if (std::isdigit(static_cast<unsigned char>(c))) {
        v = v * 10 + (c - '0');
        in_number = true;
      } else {
        if (in_number) top = std::max(top, v);
        v = 0;
        in_number = false;
      }
    }
    return top;
  };
  for (const auto& [name, layers] :
       {std::pair{"encoder", opt.encoder}, std::pair{"decoder", opt.decoder}})
    if (!layers.empty()) add(option_text(name, layers), widest(layers), 400);
  double hidden = 0;
  for (int h : opt.hidden) hidden = std::max(hidden, static_cast<double>(h));
  if (opt.encoder.empty() || opt.decoder.empty())
    add(option_text("hidden", widths_text(opt.hidden)), hidden, 400);
  std::stable_sort(sizes.begin(), sizes.end(),
                   [](const Size& a, const Size& b) { return a.ratio > b.ratio; });
  std::string others;
  for (size_t i = 1; i < sizes.size(); ++i) {
    if (i > 1) others += ", ";
    others += sizes[i].text;
  }
  return "out of memory while the run starts (std::bad_alloc); the likely cause is " +
         sizes[0].text +
         ", the size furthest above its usual value; lower it (the other sizes "
         "that decide the memory: " +
         others + ")";
}

}  // namespace vd
