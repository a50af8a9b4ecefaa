// vd::Context: the oneDNN CPU engine and stream every layer executes on.
#pragma once
#include <dnnl.hpp>

namespace vd {

// One per process (or per thread that runs layers); layers keep no engine of their own,
// so primitives built for one Context must be executed on the same Context.
struct Context {
  dnnl::engine engine;
  dnnl::stream stream;
  Context();  // CPU engine 0 and an in-order stream on it; throws vd::Error on failure
};

}  // namespace vd
