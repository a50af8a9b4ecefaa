// The core's physical arithmetic ceiling: a tight loop of the vector FMA instructions oneDNN's
// kernels are built of, timed at the clock the core runs at now.
#pragma once
#include <string>

#include "nn/precision.hpp"

namespace vd {

struct FmaPeak {
  double gflops = 0;  // one thread; 0 where the CPU lacks the instruction
  double flops_per_op =
      0;  // of one instruction: vfmadd231ps zmm 32, vdpbf16ps zmm 64, tdpbf16ps 16384
  int accumulators = 0;     // independent chains, one instruction each per loop trip
  std::string instruction;  // what was timed, e.g. "vfmadd231ps zmm"
};

// f32: vfmadd231ps on zmm registers (ymm on a CPU without AVX-512); bf16: tdpbf16ps on AMX
// tiles where oneDNN may use them, else vdpbf16ps zmm (none without AVX512_BF16). Sixteen
// independent accumulators cover the instruction's latency on two FMA ports (twelve on AVX2's
// sixteen registers). Runs about `seconds` and returns the median of ~5 ms repetitions.
FmaPeak measure_fma_peak(Precision precision, double seconds);

// What `trips` trips of that loop sum to (each FMA adds 1 x 1e-9 per product, bf16-rounded for
// the bf16 instructions), over all lanes and accumulators; 0 without the instruction. The test of
// flops_per_op: the sum is trips x accumulators x products per instruction x the addend.
double fma_loop_sum(Precision precision, long trips);

}  // namespace vd
