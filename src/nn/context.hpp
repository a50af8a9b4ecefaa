// vd::Context: the oneDNN CPU engine and stream every layer executes on, who hears when a
// layer's parameter gradients are final (the gradient sum starts on them during backward), and
// where a benchmark's per-kind times go.
#pragma once
#include <cstddef>
#include <dnnl.hpp>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace vd {

// Told by a Graph after each layer's backward: the gradients of these ParamStore entries (the
// layer's own, Layer::param_entries) are final for this step.
class GradListener {
 public:
  virtual ~GradListener() = default;
  virtual void backward_done(std::span<const size_t> entries) = 0;
};

// Sums a few doubles in place over the ranks that share one global batch. start() begins the
// exchange (non-blocking), finish() waits for it, so it can overlap other work (the VAE's
// free bits overlap it with the decoder). Every rank calls both, in the same order.
class BatchReducer {
 public:
  virtual ~BatchReducer() = default;
  virtual void start(std::span<double> values) = 0;
  virtual void finish() = 0;
  // Every rank's `mine` (any length, also 0) concatenated in rank order into all; offset is
  // where this rank's values start. Blocking.
  virtual void gather(std::span<const double> mine, std::vector<double>& all, size_t& offset) = 0;
};

// Seconds spent per kind of node ("conv fwd", "gn bwd", "sum fwd", "reorder", ...), summed
// by the Graphs while a benchmark sets Context::profile. Layers nested in a block count as
// their own kinds, the block itself not at all.
struct StepProfile {
  std::map<std::string, double> seconds;
};

// Sets flush-to-zero and denormals-are-zero (MXCSR) in the calling thread and in every OpenMP
// worker: one operation on a denormal float costs about a hundred cycles on x86, and training
// drives Adam's second moments and late gradients there (the benchmark log has what it cost).
// TensorFlow does the same; PyTorch offers it as torch.set_flush_denormal(True). Every Context
// calls it. Results differ only for magnitudes below 1.2e-38, which become zero.
void flush_denormals();
bool denormals_flushed();  // both bits set in the calling thread (false off x86)
inline constexpr unsigned kFlushDenormalBits = 0x8040;  // MXCSR FTZ (bit 15) | DAZ (bit 6)

// One per process (or per thread that runs layers); layers keep no engine of their own,
// so primitives built for one Context must be executed on the same Context.
struct Context {
  dnnl::engine engine;
  dnnl::stream stream;
  GradListener* grad_listener = nullptr;  // not owned; none outside data-parallel training
  BatchReducer* batch_reducer = nullptr;  // not owned; none = this process holds the batch
  StepProfile* profile = nullptr;         // not owned; none = no timing
  // CPU engine 0 and an in-order stream on it, denormals flushed; throws vd::Error on failure.
  Context();
};

}  // namespace vd
