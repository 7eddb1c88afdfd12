// AVX-512 (F/BW/VL/DQ + FMA) vector kernels. Compiled with AVX-512 flags: only
// intrinsics, static helpers and plain loops here (no shared templates, no <cmath>),
// exported through the table in kernels/vector_impl.h.
// The AVX-512 wrapper layer is avx512/simd_avx512.inl (the GEMM's in-register activations
// use it too); the kernels themselves are the shared text in simd/vector_kernels.inl.
// GCC 12's _mm512_undefined_* helpers trip -Wuninitialized inside the intrinsic headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/vector_impl.h"

namespace fd::kernels::avx512 {
namespace {

#include "kernels/avx512/simd_avx512.inl"

// ---------------------------------------------------------------- kernels (shared with AVX2)
#include "kernels/simd/vector_kernels.inl"

}  // namespace

const VectorKernels* vector_table() { return &kVectorTable; }

}  // namespace fd::kernels::avx512
