// vd::Context: the oneDNN CPU engine and stream every layer executes on, who hears when a
// layer's parameter gradients are final (the gradient sum starts on them during backward), and
// where a benchmark's per-kind times go.
#pragma once
#include <cstddef>
#include <dnnl.hpp>
#include <map>
#include <span>
#include <string>

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
};

// Seconds spent per kind of node ("conv fwd", "gn bwd", "sum fwd", "reorder", ...), summed
// by the Graphs while a benchmark sets Context::profile. Layers nested in a block count as
// their own kinds, the block itself not at all.
struct StepProfile {
  std::map<std::string, double> seconds;
};

// One per process (or per thread that runs layers); layers keep no engine of their own,
// so primitives built for one Context must be executed on the same Context.
struct Context {
  dnnl::engine engine;
  dnnl::stream stream;
  GradListener* grad_listener = nullptr;  // not owned; none outside data-parallel training
  BatchReducer* batch_reducer = nullptr;  // not owned; none = this process holds the batch
  StepProfile* profile = nullptr;         // not owned; none = no timing
  Context();  // CPU engine 0 and an in-order stream on it; throws vd::Error on failure
};

}  // namespace vd
