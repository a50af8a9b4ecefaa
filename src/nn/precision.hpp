// vd::Precision: the number format a layer computes in (f32, or bf16 on CPUs with AVX512_BF16),
// and the start-up check that turns --precision f32|bf16|auto into one of them.
#pragma once
#include <string>

namespace vd {

// F32: everything in float. BF16: the layer's oneDNN primitives read src, weights and diff_dst
// in bfloat16 (8-bit mantissa) and write dst, diff_src and the gradients in f32; activations
// between layers, the parameters, Adam and the loss stay f32.
enum class Precision { F32, BF16 };

const char* precision_name(Precision p);  // "f32" | "bf16"

// Whether oneDNN runs bf16 natively here: its effective ISA includes avx512_core_bf16 (a
// lower ISA would emulate bf16, slower than f32). DNNL_MAX_CPU_ISA=AVX512_CORE lowers it.
bool cpu_has_bf16();
// Whether oneDNN may run bf16 on AMX tiles (its effective ISA includes avx512_core_amx).
bool cpu_has_amx_bf16();
std::string cpu_isa_name();  // oneDNN's effective ISA, e.g. "avx512_core_bf16"

// "f32" -> F32; "bf16" -> BF16, or vd::ConfigError saying why when the CPU has no bf16;
// "auto" -> BF16 where the CPU has it, else F32 with `note` set to a sentence saying so.
Precision resolve_precision(const std::string& requested, std::string* note = nullptr);

}  // namespace vd
