// CPU feature detection (CPUID + XGETBV) and the active kernel ISA. Kernels are
// compiled per file for scalar/AVX2+FMA/AVX-512 and chosen at run time; tests pin
// the ISA (FASTDIFF_ISA=scalar|avx2|avx512 or set_active_isa) to compare every
// variant with the scalar reference.
#pragma once
#include <string>

namespace fd {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512bf16 = false;
  std::string brand;
};

const CpuFeatures& cpu_features();
Isa best_isa();               // the highest ISA this CPU and OS support
Isa active_isa();             // what kernels dispatch on now
void set_active_isa(Isa isa);  // throws ERR_ARGUMENT if the CPU lacks it
const char* isa_name(Isa isa);
bool parse_isa(const std::string& name, Isa* out);

}  // namespace fd
