// CUDA SGEMM: fd::cuda::sgemm / sgemm_batched, the twins of fd::kernels::sgemm*
// (kernels/gemm.h): C = alpha·A·B + beta·C (+ bias_row[i]) (+ bias_col[j]) on strided
// views, beta == 0 never reads C. fd::matmul_precision() picks the kernel per call:
//   Highest  float32 FMA: 128×128×8 block tile, 256 threads, 8×8 outputs per thread.
//   High     TF32 tensor cores (mma.sync m16n8k8), float32 accumulate.
//   Medium   BF16 tensor cores (mma.sync m16n8k16), float32 accumulate.
// Every kernel copies its A/B tiles global → shared with cp.async into a multi-stage
// ring (loads of later K tiles overlap the math on the current one): 16-byte copies
// when the operand is contiguous and 16-byte aligned along its fast dimension, else
// 4-byte element copies for any strides; zero fill outside the matrix makes ragged
// M/N/K tiles exact. Tensor-core tiles are float32 in shared memory, rounded to
// TF32/BF16 as fragments are loaded (cp.async cannot convert), except on the packed
// path: large problems first rewrite both operands as K-contiguous TF32/BF16 rows in
// scratch memory (half the bytes to stream for BF16, no rounding in the inner loop);
// tensor storage stays float32 either way. Grids too small for the device split K
// into a fixed number of slices (a function of the shape and SM count only) whose
// partial sums a second kernel adds in slice order, so results are deterministic.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <type_traits>

#include "common.cuh"
#include "elementwise.h"
#include "core/precision.h"
#include "gemm.h"
#include "vector.h"

namespace fd::cuda {
namespace {

// One parameter block for every kernel. Element (i, k) of matrix z's A is
// A[b·a_bs + i·a_rs + k·a_cs] with b = z / splits; likewise B(k, j) = B[b·b_bs + k·b_rs +
// j·b_cs]; C(i, j) = C[z·c_zs + i·ldc + j]. Slice s = z % splits covers K range
// [s·k_chunk, min(K, (s+1)·k_chunk)).
struct GemmParams {
  int64_t M, N, K;
  const float* A;
  int64_t a_rs, a_cs, a_bs;
  const float* B;
  int64_t b_rs, b_cs, b_bs;
  float* C;
  int64_t ldc, c_zs;
  float alpha, beta;
  const float* bias_row;
  const float* bias_col;
  int64_t zcount, splits, k_chunk;
  bool a_vec, b_vec;      // 16-byte copies allowed along the operand's fast dimension
  bool a_kfast, b_kfast;  // the operand's K stride is the smaller one
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------- device helpers

__device__ __forceinline__ void cp_async16(float* dst, const float* src, int bytes) {
  const unsigned d = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async4(float* dst, const float* src, int bytes) {
  const unsigned d = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Block tile origin from blockIdx.x. Grouped raster: 8 row tiles sweep the columns
// together, so the A rows and B columns they share stay in L2.
__device__ __forceinline__ void tile_origin(int64_t M, int64_t N, int bm, int bn, int64_t& m0, int64_t& n0) {
  constexpr int64_t G = 8;
  const int64_t tiles_m = (M + bm - 1) / bm, tiles_n = (N + bn - 1) / bn;
  const int64_t id = blockIdx.x, per_group = G * tiles_n, first = id / per_group * G;
  const int64_t rows = tiles_m - first < G ? tiles_m - first : G, local = id % per_group;
  m0 = (first + local % rows) * bm;
  n0 = (local / rows) * bn;
}

// The epilogue of one element: r = alpha·acc (+ beta·C) (+ bias_row[i]) (+ bias_col[j]),
// in the CPU kernel's order; C is read only when beta != 0.
__device__ __forceinline__ void store_c(const GemmParams& p, float* C, int64_t i, int64_t j, float acc) {
  float* c = C + i * p.ldc + j;
  float r = acc * p.alpha;
  if (p.beta != 0.f) r += p.beta * *c;
  if (p.bias_row) r += p.bias_row[i];
  if (p.bias_col) r += p.bias_col[j];
  *c = r;
}

// Copies a ROWS × BK tile (rows along M or N, columns along K) into shared memory laid
// out by L::off(r, k). g points at the tile's element (0, 0); rs / ks are the strides
// along rows / K; rows_left / k_left bound the valid part (zero fill beyond it).
// vec: 16-byte chunks along K (kfast) or along the rows, which L must store contiguously.
// Otherwise one 4-byte copy per element, consecutive threads walking the faster
// dimension of global memory.
template <class L, int ROWS, int BK, int THREADS>
__device__ __forceinline__ void load_tile(float* s, const float* g, int64_t rs, int64_t ks, int64_t rows_left,
                                          int64_t k_left, bool vec, bool kfast, int tid) {
  if (vec) {
    constexpr int CHUNKS = ROWS * BK / 4;
    static_assert(CHUNKS % THREADS == 0, "tile chunks must divide among the threads");
#pragma unroll
    for (int it = 0; it < CHUNKS / THREADS; ++it) {
      const int id = tid + it * THREADS;
      int r, k;
      int64_t left;
      if (kfast) {
        r = id / (BK / 4), k = id % (BK / 4) * 4;
        left = r < rows_left ? k_left - k : 0;
      } else {
        k = id / (ROWS / 4), r = id % (ROWS / 4) * 4;
        left = k < k_left ? rows_left - r : 0;
      }
      const int bytes = left >= 4 ? 16 : left > 0 ? int(left) * 4 : 0;
      cp_async16(s + L::off(r, k), bytes ? g + r * rs + k * ks : g, bytes);
    }
  } else {
    constexpr int ELEMS = ROWS * BK;
    static_assert(ELEMS % THREADS == 0, "tile elements must divide among the threads");
#pragma unroll 8
    for (int it = 0; it < ELEMS / THREADS; ++it) {
      const int id = tid + it * THREADS;
      const int r = kfast ? id / BK : id % ROWS, k = kfast ? id % BK : id / ROWS;
      const bool ok = r < rows_left && k < k_left;
      cp_async4(s + L::off(r, k), ok ? g + r * rs + k * ks : g, ok ? 4 : 0);
    }
  }
}

// ---------------------------------------------------------------- float32 FMA kernel

// 128×128 block tile, K in steps of 8. Thread (tx, ty) of a 16×16 grid owns rows
// {ty·4 + 0..3, 64 + ty·4 + 0..3} × columns {tx·4 + 0..3, 64 + tx·4 + 0..3}, so each k
// costs it four LDS.128 for 64 FMAs. Both tiles are stored k-major ([k][row], pitch 132:
// the 4-byte transposing copies of K-contiguous operands hit 32 different banks).
constexpr int S_BM = 128, S_BN = 128, S_BK = 8, S_STAGES = 3, S_THREADS = 256, S_PITCH = 132;
struct PaddedKRows {
  static __device__ __forceinline__ int off(int r, int k) { return k * S_PITCH + r; }
};

__global__ void __launch_bounds__(S_THREADS, 2) simt_gemm_kernel(const GemmParams p) {
  __shared__ __align__(16) float sA[S_STAGES][S_BK * S_PITCH];
  __shared__ __align__(16) float sB[S_STAGES][S_BK * S_PITCH];
  int64_t m0, n0;
  tile_origin(p.M, p.N, S_BM, S_BN, m0, n0);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  for (int64_t z = blockIdx.z; z < p.zcount; z += gridDim.z) {
    const int64_t b = z / p.splits, kb = z % p.splits * p.k_chunk;
    const int64_t klen = (p.K - kb < p.k_chunk ? p.K - kb : p.k_chunk);
    const float* A = p.A + b * p.a_bs + m0 * p.a_rs + kb * p.a_cs;
    const float* B = p.B + b * p.b_bs + n0 * p.b_cs + kb * p.b_rs;
    const int ktiles = int((klen + S_BK - 1) / S_BK);
    auto load = [&](int stage, int kt) {
      const int64_t k = int64_t(kt) * S_BK;
      load_tile<PaddedKRows, S_BM, S_BK, S_THREADS>(sA[stage], A + k * p.a_cs, p.a_rs, p.a_cs, p.M - m0, klen - k,
                                                    p.a_vec, p.a_kfast, tid);
      load_tile<PaddedKRows, S_BN, S_BK, S_THREADS>(sB[stage], B + k * p.b_rs, p.b_cs, p.b_rs, p.N - n0, klen - k,
                                                    p.b_vec, p.b_kfast, tid);
    };
    float acc[8][8] = {};
#pragma unroll
    for (int s = 0; s < S_STAGES - 1; ++s) {
      if (s < ktiles) load(s, s);
      cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
      // Tile kt has landed (this thread's copies: wait_group; everyone's: the barrier),
      // and every warp is done with the stage the prefetch below overwrites.
      cp_async_wait<S_STAGES - 2>();
      __syncthreads();
      if (kt + S_STAGES - 1 < ktiles) load((kt + S_STAGES - 1) % S_STAGES, kt + S_STAGES - 1);
      cp_async_commit();
      const float* a = sA[kt % S_STAGES];
      const float* bt = sB[kt % S_STAGES];
#pragma unroll
      for (int k = 0; k < S_BK; ++k) {
        const float4 a0 = *reinterpret_cast<const float4*>(a + k * S_PITCH + ty * 4);
        const float4 a1 = *reinterpret_cast<const float4*>(a + k * S_PITCH + 64 + ty * 4);
        const float4 b0 = *reinterpret_cast<const float4*>(bt + k * S_PITCH + tx * 4);
        const float4 b1 = *reinterpret_cast<const float4*>(bt + k * S_PITCH + 64 + tx * 4);
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // the next z reuses the stages
    float* C = p.C + z * p.c_zs;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int64_t row = m0 + (i >> 2) * 64 + ty * 4 + (i & 3);
      if (row >= p.M) continue;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int64_t col = n0 + (j >> 2) * 64 + tx * 4 + (j & 3);
        if (col < p.N) store_c(p, C, row, col, acc[i][j]);
      }
    }
  }
}

// ---------------------------------------------------------------- tensor-core kernels

// 128×128 block tile, K in steps of 32 words (32-bit words: floats, or BF16 pairs in
// the packed BF16 path), 3-stage ring of 2 × 16 KiB tiles: 96 KiB, two blocks per SM.
// Warps in a 2 × (8 / NI) grid, each a 64 × 8·NI warp tile of 4 × NI mma tiles (16×8):
// NI = 8 is 4 warps of 64×64, NI = 4 is 8 warps of 64×32.
constexpr int TC_BM = 128, TC_BN = 128, TC_BK = 32, TC_STAGES = 3;
template <int NI>
constexpr int tc_threads() { return 128 * 8 / NI; }
constexpr int TC_TILE = 128 * TC_BK;
constexpr int TC_SMEM = TC_STAGES * 2 * TC_TILE * int(sizeof(float));

// K-contiguous tile [rows][32 words]: 16-byte chunk c of row r is stored at chunk
// c ^ (r & 7), so the 8 rows an ldmatrix phase reads fall in 8 different bank groups.
struct KMajor {
  static __device__ __forceinline__ int off(int r, int k) { return r * 32 + ((((k >> 2) ^ r) & 7) << 2) + (k & 3); }
};
// Row-contiguous tile [32 k][128 rows]: chunk c of k row k is stored at c ^ f(k % 4),
// f = {0, 1, 4, 5}. A fragment read (quarter warp: k rows k0 + t for t = 0..3, chunks
// 2g + e for one e and two g) then touches 8 different bank groups.
struct RowMajor {
  static __device__ __forceinline__ int off(int r, int k) {
    const int f = (k & 1) | ((k & 2) << 1);
    return k * 128 + (((r >> 2) ^ f) << 2) + (r & 3);
  }
};

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const float* p) {
  const unsigned a = unsigned(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void lds128(float (&v)[8], int half, const float* p) {
  const float4 x = *reinterpret_cast<const float4*>(p);
  v[half * 4 + 0] = x.x, v[half * 4 + 1] = x.y, v[half * 4 + 2] = x.z, v[half * 4 + 3] = x.w;
}

// Fragments are loaded as the float32 bits of the m16n8k8 TF32 layout (PTX ISA, mma
// m16n8k8 .tf32), with g = lane / 4, t = lane % 4:
//   A (16×8): a0 = (g, t), a1 = (g+8, t), a2 = (g, t+4), a3 = (g+8, t+4)
//   B (8×8):  b0 = (k t, n g), b1 = (k t+4, n g)
// K-contiguous tiles use ldmatrix: on 32-bit data each of its 8×8 b16 matrices is 8 rows
// × 4 floats and lane l receives (row l/4, float l%4), which is exactly that layout.
// Row-contiguous tiles permute the warp's rows (columns) so that a thread's 8 values
// at one k are adjacent in shared memory (two LDS.128): logical row h·8 + g of mma tile
// mi is stored row 8g + 2mi + h; logical column g of tile ni is stored column 8g + ni.
// The epilogue applies the same maps (row_of / col_of).
template <bool KMAJ>
__device__ __forceinline__ void load_a(const float* s, int wm0, int k0, int lane, uint32_t (&a)[4][4]) {
  if constexpr (KMAJ) {
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
      ldmatrix_x4(a[mi], s + KMajor::off(wm0 + mi * 16 + (lane & 7) + (lane >> 3 & 1) * 8, k0 + (lane >> 4) * 4));
  } else {
    const int g = lane >> 2, t = lane & 3;
    float v0[8], v4[8];
    lds128(v0, 0, s + RowMajor::off(wm0 + 8 * g, k0 + t));
    lds128(v0, 1, s + RowMajor::off(wm0 + 8 * g + 4, k0 + t));
    lds128(v4, 0, s + RowMajor::off(wm0 + 8 * g, k0 + t + 4));
    lds128(v4, 1, s + RowMajor::off(wm0 + 8 * g + 4, k0 + t + 4));
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
      a[mi][0] = __float_as_uint(v0[2 * mi]), a[mi][1] = __float_as_uint(v0[2 * mi + 1]);
      a[mi][2] = __float_as_uint(v4[2 * mi]), a[mi][3] = __float_as_uint(v4[2 * mi + 1]);
    }
  }
}

template <bool KMAJ, int NI>
__device__ __forceinline__ void load_b(const float* s, int wn0, int k0, int lane, uint32_t (&b)[NI][2]) {
  static_assert(KMAJ || NI == 8, "row-contiguous B fragments cover 64 columns");
  if constexpr (KMAJ) {
#pragma unroll
    for (int np = 0; np < NI / 2; ++np) {  // one ldmatrix.x4: b0, b1 of tiles 2np and 2np + 1
      uint32_t r[4];
      ldmatrix_x4(r, s + KMajor::off(wn0 + np * 16 + (lane & 7) + (lane >> 4) * 8, k0 + (lane >> 3 & 1) * 4));
      b[2 * np][0] = r[0], b[2 * np][1] = r[1], b[2 * np + 1][0] = r[2], b[2 * np + 1][1] = r[3];
    }
  } else {
    const int g = lane >> 2, t = lane & 3;
    float v0[8], v4[8];
    lds128(v0, 0, s + RowMajor::off(wn0 + 8 * g, k0 + t));
    lds128(v0, 1, s + RowMajor::off(wn0 + 8 * g + 4, k0 + t));
    lds128(v4, 0, s + RowMajor::off(wn0 + 8 * g, k0 + t + 4));
    lds128(v4, 1, s + RowMajor::off(wn0 + 8 * g + 4, k0 + t + 4));
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) b[ni][0] = __float_as_uint(v0[ni]), b[ni][1] = __float_as_uint(v4[ni]);
  }
}

// Output row (col) of accumulator element h (e) of mma tile mi (ni), from the maps above.
template <bool KMAJ>
__device__ __forceinline__ int row_of(int mi, int h, int g) {
  return KMAJ ? mi * 16 + h * 8 + g : 8 * g + 2 * mi + h;
}
template <bool KMAJ>
__device__ __forceinline__ int col_of(int ni, int e, int t) {
  return KMAJ ? ni * 8 + 2 * t + e : 8 * (2 * t + e) + ni;
}

__device__ __forceinline__ uint32_t to_tf32(uint32_t x) {  // round to nearest, ties away
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(x)));
  return r;
}
__device__ __forceinline__ uint32_t pack_bf16(uint32_t lo, uint32_t hi) {  // round to nearest even
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(__uint_as_float(hi)), "f"(__uint_as_float(lo)));
  return r;
}
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

enum class Tc { TF32, BF16 };

// The warp's share of one 32-word K tile: acc[mi][ni] += A(64×32) · B(32×64).
// PACKED: the operands were converted to TF32 / BF16 beforehand (pack_kernel) and are
// K-contiguous; 8 words of a row are then one k8 TF32 or one k16 BF16 step, and
// ldmatrix yields the mma fragments directly (for BF16 this is its native b16 use).
template <Tc P, bool AK, bool BK, bool PACKED, int NI>
__device__ __forceinline__ void tc_tile(const float* sa, const float* sb, int wm0, int wn0, int lane,
                                        float (&acc)[4][NI][4]) {
  if constexpr (PACKED) {
#pragma unroll
    for (int kw = 0; kw < TC_BK; kw += 8) {
      uint32_t a[4][4], b[NI][2];
      load_a<true>(sa, wm0, kw, lane, a);
      load_b<true, NI>(sb, wn0, kw, lane, b);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) {
          if constexpr (P == Tc::TF32) mma_tf32(acc[mi][ni], a[mi], b[ni]);
          else mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
    }
  } else if constexpr (P == Tc::TF32) {
#pragma unroll
    for (int kk = 0; kk < TC_BK; kk += 8) {
      uint32_t a[4][4], b[NI][2];
      load_a<AK>(sa, wm0, kk, lane, a);
      load_b<BK, NI>(sb, wn0, kk, lane, b);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int q = 0; q < 4; ++q) a[mi][q] = to_tf32(a[mi][q]);
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) b[ni][0] = to_tf32(b[ni][0]), b[ni][1] = to_tf32(b[ni][1]);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) mma_tf32(acc[mi][ni], a[mi], b[ni]);
    }
  } else {
    // m16n8k16 BF16 operands hold k pairs (2t, 2t+1) and (2t+8, 2t+9). A dot product
    // does not care how k is ordered as long as A and B agree, so the pairs are filled
    // from the two TF32-layout fragments of k0..7 and k8..15: logical k 2t, 2t+1 ↔
    // stored k t, t+4 (first fragment), 2t+8, 2t+9 ↔ 8+t, 12+t (second one).
#pragma unroll
    for (int kk = 0; kk < TC_BK; kk += 16) {
      uint32_t a[4][4], b[NI][2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {  // half 0: k0..7 → a[.][0..1], b[.][0]; half 1: k8..15
        uint32_t fa[4][4], fb[NI][2];
        load_a<AK>(sa, wm0, kk + half * 8, lane, fa);
        load_b<BK, NI>(sb, wn0, kk + half * 8, lane, fb);
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
          a[mi][2 * half] = pack_bf16(fa[mi][0], fa[mi][2]), a[mi][2 * half + 1] = pack_bf16(fa[mi][1], fa[mi][3]);
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) b[ni][half] = pack_bf16(fb[ni][0], fb[ni][1]);
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni]);
    }
  }
}

// AK / BK: the A / B tile is stored K-contiguous (KMajor) rather than row-contiguous
// (RowMajor); chosen on the host from which stride is smaller.
template <Tc P, bool AK, bool BK, bool PACKED, int NI>
__global__ void __launch_bounds__(tc_threads<NI>(), 2) tc_gemm_kernel(const GemmParams p) {
  constexpr int THREADS = tc_threads<NI>();
  extern __shared__ float4 tc_smem[];
  using LA = std::conditional_t<AK, KMajor, RowMajor>;
  using LB = std::conditional_t<BK, KMajor, RowMajor>;
  float* const sA = reinterpret_cast<float*>(tc_smem);
  float* const sB = sA + TC_STAGES * TC_TILE;
  int64_t m0, n0;
  tile_origin(p.M, p.N, TC_BM, TC_BN, m0, n0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm0 = (warp & 1) * 64, wn0 = (warp >> 1) * 8 * NI;
  for (int64_t z = blockIdx.z; z < p.zcount; z += gridDim.z) {
    const int64_t b = z / p.splits, kb = z % p.splits * p.k_chunk;
    const int64_t klen = (p.K - kb < p.k_chunk ? p.K - kb : p.k_chunk);
    const float* A = p.A + b * p.a_bs + m0 * p.a_rs + kb * p.a_cs;
    const float* B = p.B + b * p.b_bs + n0 * p.b_cs + kb * p.b_rs;
    const int ktiles = int((klen + TC_BK - 1) / TC_BK);
    auto load = [&](int stage, int kt) {
      const int64_t k = int64_t(kt) * TC_BK;
      load_tile<LA, TC_BM, TC_BK, THREADS>(sA + stage * TC_TILE, A + k * p.a_cs, p.a_rs, p.a_cs, p.M - m0,
                                              klen - k, p.a_vec, AK, tid);
      load_tile<LB, TC_BN, TC_BK, THREADS>(sB + stage * TC_TILE, B + k * p.b_rs, p.b_cs, p.b_rs, p.N - n0,
                                              klen - k, p.b_vec, BK, tid);
    };
    float acc[4][NI][4] = {};
#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; ++s) {
      if (s < ktiles) load(s, s);
      cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
      cp_async_wait<TC_STAGES - 2>();  // see simt_gemm_kernel
      __syncthreads();
      if (kt + TC_STAGES - 1 < ktiles) load((kt + TC_STAGES - 1) % TC_STAGES, kt + TC_STAGES - 1);
      cp_async_commit();
      const int st = kt % TC_STAGES;
      tc_tile<P, AK, BK, PACKED, NI>(sA + st * TC_TILE, sB + st * TC_TILE, wm0, wn0, lane, acc);
    }
    cp_async_wait<0>();
    __syncthreads();  // the next z reuses the stages
    // Accumulator element c of tile (mi, ni): row g + 8·(c / 2), column 2t + c % 2.
    float* C = p.C + z * p.c_zs;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = m0 + wm0 + row_of<AK>(mi, h, g);
        if (row >= p.M) continue;
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int64_t col = n0 + wn0 + col_of<BK>(ni, e, t);
            if (col < p.N) store_c(p, C, row, col, acc[mi][ni][h * 2 + e]);
          }
      }
  }
}

// ---------------------------------------------------------------- operand packing

// Rewrites nb matrices R × K (element (r, k) at src[b·bs + r·rs + k·ks]) as K-contiguous
// rows of TF32-rounded floats or BF16 values, dst[b][r][0..Kp), zero past K (Kp keeps
// rows 16-byte aligned). 32×32 tiles pass through shared memory, so both the reads
// (along whichever dimension is contiguous) and the writes (along K) are coalesced.
template <Tc P>
__global__ void pack_kernel(const float* src, int64_t rs, int64_t ks, int64_t bs, int64_t nb, int64_t R, int64_t K,
                            int64_t Kp, bool kfast, void* dst) {
  __shared__ float tile[32][33];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;  // 32 × 8 threads
  const int64_t r0 = int64_t(blockIdx.x) * 32, ktiles = (Kp + 31) / 32;
  for (int64_t b = blockIdx.z; b < nb; b += gridDim.z)
    for (int64_t kt = blockIdx.y; kt < ktiles; kt += gridDim.y) {
      const int64_t k0 = kt * 32;
#pragma unroll
      for (int i = 0; i < 4; ++i) {  // tx walks the contiguous dimension
        const int u = ty + 8 * i, rr = kfast ? u : tx, kk = kfast ? tx : u;
        const int64_t r = r0 + rr, k = k0 + kk;
        tile[rr][kk] = r < R && k < K ? src[b * bs + r * rs + k * ks] : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t r = r0 + ty + 8 * i, k = k0 + tx;
        if (r >= R || k >= Kp) continue;
        const uint32_t v = __float_as_uint(tile[ty + 8 * i][tx]);
        const int64_t o = (b * R + r) * Kp + k;
        if constexpr (P == Tc::TF32) static_cast<uint32_t*>(dst)[o] = to_tf32(v);
        else static_cast<uint16_t*>(dst)[o] = uint16_t(pack_bf16(v, 0u));
      }
      __syncthreads();
    }
}

// ---------------------------------------------------------------- epilogue-only kernels

// K == 0 or alpha == 0: no product, C = alpha·0 (+ beta·C) (+ biases), like the CPU.
__global__ void scale_kernel(const GemmParams p) {
  const int64_t mn = p.M * p.N, total = p.zcount * mn;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t z = e / mn, ij = e % mn;
    store_c(p, p.C + z * p.c_zs, ij / p.N, ij % p.N, 0.f);
  }
}

// Split K: part holds [batch][splits][M][N] partial products; sum them in slice order
// and apply the epilogue.
__global__ void splitk_reduce_kernel(const GemmParams p, const float* part, int64_t splits) {
  const int64_t mn = p.M * p.N, total = p.zcount * mn;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t z = e / mn, ij = e % mn;
    const float* src = part + z * splits * mn + ij;
    float acc = 0.f;
    for (int64_t s = 0; s < splits; ++s) acc += src[s * mn];
    store_c(p, p.C + z * p.c_zs, ij / p.N, ij % p.N, acc);
  }
}

// ---------------------------------------------------------------- host side

constexpr int kMaxDevices = 64;

int sm_count() {
  static std::mutex mu;
  static int cache[kMaxDevices] = {};
  const int dev = current_device();
  std::lock_guard<std::mutex> lock(mu);
  if (dev < kMaxDevices && cache[dev]) return cache[dev];
  int n = 0;
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "matmul");
  if (n < 1) n = 1;
  if (dev < kMaxDevices) cache[dev] = n;
  return n;
}

template <Tc P, bool AK, bool BK, bool PACKED, int NI = 8>
void launch_tc(const GemmParams& p, dim3 grid) {
  // 96 KiB of dynamic shared memory needs an opt-in, once per device; the carveout
  // preference lets two blocks share an SM.
  static std::mutex mu;
  static bool ready[kMaxDevices] = {};
  const int dev = current_device();
  {
    std::lock_guard<std::mutex> lock(mu);
    if (dev >= kMaxDevices || !ready[dev]) {
      auto* kernel = tc_gemm_kernel<P, AK, BK, PACKED, NI>;
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, TC_SMEM), "matmul");
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 int(cudaSharedmemCarveoutMaxShared)),
            "matmul");
      if (dev < kMaxDevices) ready[dev] = true;
    }
  }
  tc_gemm_kernel<P, AK, BK, PACKED, NI><<<grid, tc_threads<NI>(), TC_SMEM, stream()>>>(p);
}

// Warp tile width of the packed kernel (see tc_gemm_kernel); on an H200, 4 warps of
// 64×64 measured ~5% faster at 4096³ than 8 warps of 64×32.
constexpr int kPackedNI = 8;

template <Tc P>
void launch_tc(const GemmParams& p, dim3 grid, bool packed) {
  if (packed) launch_tc<P, true, true, true, kPackedNI>(p, grid);
  else if (p.a_kfast && p.b_kfast) launch_tc<P, true, true, false>(p, grid);
  else if (p.a_kfast) launch_tc<P, true, false, false>(p, grid);
  else if (p.b_kfast) launch_tc<P, false, true, false>(p, grid);
  else launch_tc<P, false, false, false>(p, grid);
}

void launch_pack(Tc P, const float* src, int64_t rs, int64_t ks, int64_t bs, int64_t nb, int64_t R, int64_t K,
                 int64_t Kp, bool kfast, void* dst) {
  const dim3 grid(unsigned(ceil_div(R, 32)), unsigned(std::min<int64_t>(ceil_div(Kp, 32), 65535)),
                  unsigned(std::min<int64_t>(nb, 65535)));
  if (P == Tc::TF32) pack_kernel<Tc::TF32><<<grid, 256, 0, stream()>>>(src, rs, ks, bs, nb, R, K, Kp, kfast, dst);
  else pack_kernel<Tc::BF16><<<grid, 256, 0, stream()>>>(src, rs, ks, bs, nb, R, K, Kp, kfast, dst);
  check_launch("matmul");
}

// 16-byte copies need a unit stride along the copied dimension, the other stride and
// the batch stride in multiples of 4 floats, and a 16-byte aligned base.
bool vec_ok(const float* p, int64_t unit_stride, int64_t other_stride, int64_t batch_stride) {
  return unit_stride == 1 && other_stride % 4 == 0 && batch_stride % 4 == 0 &&
         reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Tensor-core problems at least this large (per matrix) pack their operands first
// (see run()).
constexpr int64_t kPackMinMN = 512, kPackMinK = 256;

void run(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, MatView A, int64_t stride_a, MatView B,
         int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c, const GemmEpilogue& ep) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  GemmParams p{};
  p.M = M, p.N = N, p.K = K;
  p.A = A.p, p.a_rs = A.rs, p.a_cs = A.cs, p.a_bs = stride_a;
  p.B = B.p, p.b_rs = B.rs, p.b_cs = B.cs, p.b_bs = stride_b;
  p.C = C, p.ldc = ldc, p.c_zs = stride_c;
  p.alpha = alpha, p.beta = beta;
  p.bias_row = ep.bias_row, p.bias_col = ep.bias_col;
  p.zcount = batch, p.splits = 1, p.k_chunk = K;
  if (K <= 0 || alpha == 0.f) {
    scale_kernel<<<grid_for(batch * M * N), 256, 0, stream()>>>(p);
    check_launch("matmul");
    return;
  }
  const MatmulPrecision prec = matmul_precision();
  const bool simt = prec == MatmulPrecision::Highest;
  const Tc tc = prec == MatmulPrecision::High ? Tc::TF32 : Tc::BF16;
  p.a_kfast = std::llabs(A.cs) <= std::llabs(A.rs);
  p.b_kfast = std::llabs(B.rs) <= std::llabs(B.cs);
  if (simt) {  // its tiles are row-contiguous: only row-contiguous operands copy 16 bytes
    p.a_vec = !p.a_kfast && vec_ok(A.p, A.rs, A.cs, stride_a);
    p.b_vec = !p.b_kfast && vec_ok(B.p, B.cs, B.rs, stride_b);
  } else {
    p.a_vec = p.a_kfast ? vec_ok(A.p, A.cs, A.rs, stride_a) : vec_ok(A.p, A.rs, A.cs, stride_a);
    p.b_vec = p.b_kfast ? vec_ok(B.p, B.rs, B.cs, stride_b) : vec_ok(B.p, B.cs, B.rs, stride_b);
  }

  // Large tensor-core problems convert both operands first into K-contiguous TF32 /
  // BF16 rows (pack_kernel): the GEMM then streams half the bytes for BF16, never
  // rounds in its inner loop, and always takes the ldmatrix / 16-byte-copy path.
  // TF32 skips that when both operands already are K-contiguous and aligned (the
  // rounding in the loop then costs less than the extra pass). K is then counted in
  // 32-bit words (two BF16 values each).
  const bool in_place_ok = tc == Tc::TF32 && p.a_kfast && p.a_vec && p.b_kfast && p.b_vec;
  std::optional<Scratch> pa, pb;
  bool packed = false;
  if (!simt && !in_place_ok && M >= kPackMinMN && N >= kPackMinMN && K >= kPackMinK) {
    const int64_t Kp = tc == Tc::BF16 ? ceil_div(K, 8) * 8 : ceil_div(K, 4) * 4;
    const int64_t Kw = tc == Tc::BF16 ? Kp / 2 : Kp;
    const int64_t na = stride_a == 0 ? 1 : batch, nb = stride_b == 0 ? 1 : batch;
    try {
      pa.emplace(size_t(na * M * Kw) * 4, "matmul");
      pb.emplace(size_t(nb * N * Kw) * 4, "matmul");
      packed = true;
    } catch (const Error&) {  // no room: use the operands in place
      pa.reset(), pb.reset();
    }
    if (packed) {
      launch_pack(tc, A.p, A.rs, A.cs, stride_a, na, M, K, Kp, p.a_kfast, pa->get());
      launch_pack(tc, B.p, B.cs, B.rs, stride_b, nb, N, K, Kp, p.b_kfast, pb->get());
      p.K = p.k_chunk = Kw;
      p.A = pa->get<float>(), p.a_rs = Kw, p.a_cs = 1, p.a_bs = na == 1 ? 0 : M * Kw;
      p.B = pb->get<float>(), p.b_rs = 1, p.b_cs = Kw, p.b_bs = nb == 1 ? 0 : N * Kw;
      p.a_kfast = p.b_kfast = p.a_vec = p.b_vec = true;
    }
  }
  const int64_t bk = simt ? S_BK : TC_BK;
  const int64_t tiles = ceil_div(M, 128) * ceil_div(N, 128);
  FD_CHECK(tiles < (int64_t(1) << 31), ErrorCode::Shape, "matmul: output of ", M, "x", N, " is too large");

  // Split K when the grid cannot fill the device (two blocks per SM), keeping slices at least 128 deep
  // and the partial sums under 256 MiB.
  int64_t splits = 1;
  const int64_t blocks = tiles * batch, want = 2 * int64_t(sm_count());
  if (blocks < want && p.K >= 256) {
    splits = std::min<int64_t>({ceil_div(want, blocks), p.K / 128, 32});
    while (splits > 1 && splits * batch * M * N > (int64_t(64) << 20)) --splits;
  }
  std::optional<Scratch> part;
  if (splits > 1) {
    p.k_chunk = ceil_div(ceil_div(p.K, splits), bk) * bk;
    splits = ceil_div(p.K, p.k_chunk);
    try {
      part.emplace(size_t(splits * batch * M * N) * sizeof(float), "matmul");
    } catch (const Error&) {  // no room for partial sums: run unsplit
      splits = 1, p.k_chunk = p.K;
    }
  }
  GemmParams q = p;  // what the GEMM kernel computes
  if (splits > 1) {
    q.C = part->get<float>(), q.ldc = N, q.c_zs = M * N;
    q.alpha = 1.f, q.beta = 0.f, q.bias_row = q.bias_col = nullptr;
    q.zcount = batch * splits, q.splits = splits;
  }
  const dim3 grid(unsigned(tiles), 1, unsigned(std::min<int64_t>(q.zcount, 65535)));
  if (simt) simt_gemm_kernel<<<grid, S_THREADS, 0, stream()>>>(q);
  else if (tc == Tc::TF32) launch_tc<Tc::TF32>(q, grid, packed);
  else launch_tc<Tc::BF16>(q, grid, packed);
  check_launch("matmul");
  if (splits > 1) {
    splitk_reduce_kernel<<<grid_for(batch * M * N), 256, 0, stream()>>>(p, part->get<float>(), splits);
    check_launch("matmul");
  }
}

}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
           const GemmEpilogue& epilogue) {
  run(1, M, N, K, alpha, A, 0, B, 0, beta, C, ldc, 0, epilogue);
  if (epilogue.activation && M > 0 && N > 0) {  // a pass of its own here (the CPU's is fused)
    if (ldc == N)
      cuda::unary(*epilogue.activation, M * N, C, C);
    else
      for (int64_t i = 0; i < M; ++i) cuda::unary(*epilogue.activation, N, C + i * ldc, C + i * ldc);
  }
  if (epilogue.residual && M > 0 && N > 0) {  // C (·gate) + residual; out is written densely: per row unless ldc == N
    const float* gate = epilogue.gate;
    const int64_t P = epilogue.gate_period, G = ldc == N && M % P == 0 ? M / P : 0;
    auto rows = [&](int64_t i0, std::vector<int64_t> dims, Strides strides) {
      float* c = C + i0 * ldc;
      const float* r = epilogue.residual + i0 * ldc;
      if (gate)
        cuda::strided_mul_add(dims, strides, c, gate + i0 / P * epilogue.gate_ld, r, c);
      else
        cuda::strided_binary(kernels::Binary::Add, dims, {strides[0], strides[2]}, c, r, c);
    };
    if (G > 0)
      rows(0, {G, P, N}, {{P * N, N, 1}, {epilogue.gate_ld, 0, 1}, {P * N, N, 1}});
    else
      for (int64_t i = 0; i < M; ++i) rows(i, {N}, {{1}, {1}, {1}});
  }
}

void sgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, MatView A, int64_t stride_a, MatView B,
                   int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c) {
  run(batch, M, N, K, alpha, A, stride_a, B, stride_b, beta, C, ldc, stride_c, {});
}

}  // namespace fd::cuda
