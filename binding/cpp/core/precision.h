// Matmul precision on CUDA (the CPU always computes in float32), named like
// torch.set_float32_matmul_precision: "highest" float32 FMA, "high" TF32 tensor
// cores, "medium" BF16 tensor cores; float32 storage and accumulation in all three.
#pragma once
#include <atomic>

namespace fd {

enum class MatmulPrecision : int { Highest = 0, High = 1, Medium = 2 };

inline std::atomic<int>& matmul_precision_state() {
  static std::atomic<int> state{int(MatmulPrecision::High)};
  return state;
}
inline MatmulPrecision matmul_precision() { return MatmulPrecision(matmul_precision_state().load()); }
inline void set_matmul_precision(MatmulPrecision p) { matmul_precision_state().store(int(p)); }

}  // namespace fd
