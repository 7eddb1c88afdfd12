// Process-wide settings of the arithmetic kernels use, read when each kernel runs.
// - Matmul precision, named like torch.set_float32_matmul_precision: "highest" float32
//   FMA, "high" TF32 tensor cores on CUDA (float32 on the CPU), "medium" BF16 tensor
//   cores on CUDA and AVX512-BF16 on CPUs that have it; float32 storage and accumulation.
// - Convolution algorithm on the CPU: "auto" (by the shape: Winograd, kernels/winograd.h, the
//   direct 3×3 kernel for small maps, kernels/direct3x3.h, or the implicit GEMM), "direct"
//   (implicit GEMM only), "winograd" / "winograd4" (every conv the Winograd path can compute)
//   or "direct3x3" (every conv the direct 3×3 kernel can compute).
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

enum class ConvAlgorithm : int { Auto = 0, Direct = 1, Winograd = 2, Winograd4 = 3, Direct3x3 = 4 };

inline std::atomic<int>& conv_algorithm_state() {
  static std::atomic<int> state{int(ConvAlgorithm::Auto)};
  return state;
}
inline ConvAlgorithm conv_algorithm() { return ConvAlgorithm(conv_algorithm_state().load()); }
inline void set_conv_algorithm(ConvAlgorithm a) { conv_algorithm_state().store(int(a)); }

}  // namespace fd
