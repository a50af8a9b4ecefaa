// Precision names and the CPU check behind --precision, from oneDNN's effective ISA.
#include "nn/precision.hpp"

#include <dnnl.hpp>

#include "core/error.hpp"

namespace vd {

const char* precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : "f32";
}

namespace {
// cpu_isa values are bit sets (avx2_vnni = 0x407 is numerically above avx512_core_bf16 = 0xe7
// yet has no bf16), so test containment, not order.
bool has(dnnl::cpu_isa isa, dnnl::cpu_isa want) {
  return (static_cast<unsigned>(isa) & static_cast<unsigned>(want)) == static_cast<unsigned>(want);
}
}  // namespace

bool cpu_has_bf16() {
  return has(dnnl::get_effective_cpu_isa(), dnnl::cpu_isa::avx512_core_bf16);
}

bool cpu_has_amx_bf16() {
  return has(dnnl::get_effective_cpu_isa(), dnnl::cpu_isa::avx512_core_amx);
}

std::string cpu_isa_name() {
  using I = dnnl::cpu_isa;
  const I isa = dnnl::get_effective_cpu_isa();
  // The best-known name first.
  const std::pair<I, const char*> names[] = {{I::avx512_core_amx, "avx512_core_amx"},
                                             {I::avx512_core_bf16, "avx512_core_bf16"},
                                             {I::avx512_core_vnni, "avx512_core_vnni"},
                                             {I::avx512_core, "avx512_core"},
                                             {I::avx2_vnni, "avx2_vnni"},
                                             {I::avx2, "avx2"},
                                             {I::avx, "avx"},
                                             {I::sse41, "sse41"}};
  for (const auto& [value, name] : names)
    if (has(isa, value)) return name;
  return "unknown";
}

Precision resolve_precision(const std::string& requested, std::string* note) {
  if (requested == "f32") return Precision::F32;
  if (requested != "bf16" && requested != "auto")
    throw ConfigError("--precision: '" + requested + "' is not one of f32, bf16, auto");
  if (cpu_has_bf16()) return Precision::BF16;
  const std::string why = "this CPU has no native bf16 (oneDNN's ISA is " + cpu_isa_name() +
                          ", bf16 needs avx512_core_bf16";
  if (requested == "bf16")
    throw ConfigError("--precision bf16: " + why +
                      "); use --precision f32, or auto to fall back to f32 by itself");
  if (note) *note = "--precision auto: " + why + "), so training runs in f32";
  return Precision::F32;
}

}  // namespace vd
