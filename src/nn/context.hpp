// vd::Context: the oneDNN CPU engine and stream every layer executes on, and who hears when a
// layer's parameter gradients are final (the gradient sum starts on them during backward).
#pragma once
#include <cstddef>
#include <dnnl.hpp>
#include <span>

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

// One per process (or per thread that runs layers); layers keep no engine of their own,
// so primitives built for one Context must be executed on the same Context.
struct Context {
  dnnl::engine engine;
  dnnl::stream stream;
  GradListener* grad_listener = nullptr;  // not owned; none outside data-parallel training
  BatchReducer* batch_reducer = nullptr;  // not owned; none = this process holds the batch
  Context();  // CPU engine 0 and an in-order stream on it; throws vd::Error on failure
};

}  // namespace vd
