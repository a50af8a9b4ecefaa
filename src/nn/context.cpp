// vd::Context construction: CPU engine 0 plus a stream, with oneDNN errors turned into vd::Error,
// and denormal floats flushed to zero in every thread that computes.
#include "nn/context.hpp"

#include <omp.h>

#include <string>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "core/error.hpp"

namespace vd {

namespace {
dnnl::engine make_cpu_engine() {
  try {
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  } catch (const dnnl::error& e) {
    throw Error(std::string("Could not create the oneDNN CPU engine: ") + e.what());
  }
}
}  // namespace

void flush_denormals() {
#if defined(__SSE__)
  const auto set = [] { _mm_setcsr(_mm_getcsr() | kFlushDenormalBits); };
  set();
  // The OpenMP workers that exist already; threads made later inherit the creator's MXCSR.
#pragma omp parallel
  set();
#endif
}

bool denormals_flushed() {
#if defined(__SSE__)
  return (_mm_getcsr() & kFlushDenormalBits) == kFlushDenormalBits;
#else
  return false;
#endif
}

Context::Context() : engine(make_cpu_engine()) {
  flush_denormals();
  try {
    stream = dnnl::stream(engine);
  } catch (const dnnl::error& e) {
    throw Error(std::string("Could not create a oneDNN stream on the CPU engine: ") + e.what());
  }
}

}  // namespace vd
