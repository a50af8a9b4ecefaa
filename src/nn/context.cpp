// vd::Context construction: CPU engine 0 plus a stream, with oneDNN errors turned into vd::Error.
#include "nn/context.hpp"

#include <string>

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

Context::Context() : engine(make_cpu_engine()) {
  try {
    stream = dnnl::stream(engine);
  } catch (const dnnl::error& e) {
    throw Error(std::string("Could not create a oneDNN stream on the CPU engine: ") + e.what());
  }
}

}  // namespace vd
