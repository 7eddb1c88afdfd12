// Scaled dot-product attention on the GPU, FlashAttention-2 style (Dao 2023):
//
//   forward  (Algorithm 1): one block per (b·h, 64 query rows); loop over key/value
//            tiles staged in shared memory; online softmax in base 2 (running row max
//            m and sum l, the accumulator rescaled by exp2(m_old − m_new)); writes
//            o = acc / l and lse = ln 2 · (m + log2 l). Nq×Nk is never stored.
//   backward (Algorithm 2): delta_i = Σ_c dO_ic·O_ic (one warp per row); then
//            dK, dV: one block per (b·h, 64 keys) loops over query tiles, recomputing
//                    Pᵀ = exp(S − lse), dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − delta);
//                    dV += Pᵀ·dO, dK += dSᵀ·Q (scaled at the end);
//            dQ:     one block per (b·h, 64 queries) loops over key tiles, recomputing
//                    P and dS; dQ += dS·K. A separate pass instead of float atomics, so
//                    the result is deterministic (every output element has one writer).
//
// Two implementations of the same algorithm:
//   tensor cores (D, Dv <= 128, precision "high" → TF32 m16n8k8, "medium" → BF16
//     m16n8k16): 4 warps, each owning 16 rows of the output tile; shared memory holds
//     float32 tiles (loaded with cp.async, zero-filled past the tensor edges; TF32 tiles
//     are rounded in place once, BF16 pairs are converted while they are read); P and dS
//     stay in registers (the accumulator layout is reused as the A operand of the next
//     product). The forward pass prefetches K(j+1) and V(j) while computing.
//   float32 FMA ("highest", or D/Dv > 128): 256 threads, 64×64 tiles, 4×4 per thread,
//     the reduction dimension staged through shared memory in chunks of 32, so any D
//     and Dv work (large Dv is split over gridDim.y).
#include <cuda_bf16.h>

#include <climits>
#include <cmath>
#include <cstring>

#include "common.cuh"
#include "core/precision.h"
#include "cuda/attention.h"

namespace fd::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__host__ __device__ constexpr int round_up(int x, int m) { return (x + m - 1) / m * m; }

struct FwdArgs {
  const float *q, *k, *v;
  float *o, *lse;
  int64_t Nq, Nk;
  int D, Dv;
  float scale;
  bool vec;  // 16-byte loads are safe: D, Dv multiples of 4 and 16-byte aligned bases
};

struct BwdArgs {
  const float *q, *k, *v, *go, *lse, *delta;
  float *gq, *gk, *gv;
  int64_t Nq, Nk;
  int D, Dv;
  float scale;
  bool vec;
};

// ------------------------------------------------------------------ PTX helpers

// Asynchronous global → shared copies (sm_80). With `valid` false nothing is read and
// the destination is zero-filled (src-size 0), which pads tiles past the tensor edge.
__device__ __forceinline__ void cp_async4(float* dst, const float* src, bool valid) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 4 : 0) : "memory");
}
__device__ __forceinline__ void cp_async16(float* dst, const float* src, bool valid) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}
// Two floats → bf16x2 (round to nearest even); `lo` is the element with the lower index.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &h, sizeof r);
  return r;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ------------------------------------------------------------------ tensor-core fragments
//
// Lane l of a warp: g = l / 4 (group), t = l % 4 (thread in group). The accumulator
// C (16×8, float) of every mma holds c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t],
// c3 = C[g+8][2t+1] (PTX ISA, "Matrix fragments for mma.m16n8k*"). Operands are read
// from float32 shared memory in three ways:
//   load_a       A (16×K) = rows of a row-major tile a[m][k]
//   load_b_rows  B (K×8) with B(k, n) = b[n][k]  (the tile's rows are the n index: Kᵀ)
//   load_b_cols  B (K×8) with B(k, n) = b[k][n]  (the tile's rows are the k index: V)
// and a_from_c turns accumulators of a 16×K product into the A operand of the next mma
// (P·V) without going through shared memory.

// TF32 m16n8k8: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4];
// b0 = B[t][g], b1 = B[t+4][g]. The C layout holds columns 2t, 2t+1 while A wants t, t+4,
// so a_from_c/load_b_cols permute the reduction index (k = t ↔ column 2t, k = t+4 ↔ 2t+1);
// a product is invariant under the same permutation of A's columns and B's rows.
// Tiles in shared memory are rounded to TF32 once after they land (preround_tile), so
// the loads below pass the bits straight to the mma.
struct Tf32 {
  static constexpr int K = 8;    // reduction depth of one mma
  static constexpr int PAD = 4;  // row padding of tiles read by load_a/load_b_rows (row stride ≡ 4 mod 32 banks)
  static constexpr bool kPreround = true;
  static __device__ __forceinline__ void load_a(uint32_t (&f)[4], const float* a, int ld, int k0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const float* r0 = a + g * ld + k0 + t;
    const float* r1 = r0 + 8 * ld;
    f[0] = __float_as_uint(r0[0]), f[1] = __float_as_uint(r1[0]), f[2] = __float_as_uint(r0[4]),
    f[3] = __float_as_uint(r1[4]);
  }
  static __device__ __forceinline__ void load_b_rows(uint32_t (&f)[2], const float* b, int ld, int k0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const float* r = b + g * ld + k0 + t;
    f[0] = __float_as_uint(r[0]), f[1] = __float_as_uint(r[4]);
  }
  // b points at row k0 of the tile; n0 is the first column of the n-tile.
  static __device__ __forceinline__ void load_b_cols(uint32_t (&f)[2], const float* b, int ld, int n0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const float* r = b + 2 * t * ld + n0 + g;
    f[0] = __float_as_uint(r[0]), f[1] = __float_as_uint(r[ld]);
  }
  // c: the accumulator n-tile covering this mma's 8 reduction indices.
  static __device__ __forceinline__ void a_from_c(uint32_t (&f)[4], const float (*c)[4]) {
    f[0] = to_tf32(c[0][0]), f[1] = to_tf32(c[0][2]), f[2] = to_tf32(c[0][1]), f[3] = to_tf32(c[0][3]);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// BF16 m16n8k16 (pairs packed low index first): a0 = A[g][2t..2t+1], a1 = A[g+8][2t..2t+1],
// a2 = A[g][2t+8..2t+9], a3 = A[g+8][2t+8..2t+9]; b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g].
// Here the C layout of two adjacent n-tiles is exactly an A fragment: no permutation.
struct Bf16 {
  static constexpr int K = 16;
  static constexpr int PAD = 8;  // float2 reads: row stride ≡ 8 mod 32 banks is conflict-free
  static constexpr bool kPreround = false;  // float pairs are converted while they are read
  static __device__ __forceinline__ uint32_t pair(const float* p) {
    const float2 x = *reinterpret_cast<const float2*>(p);
    return pack_bf16(x.x, x.y);
  }
  static __device__ __forceinline__ void load_a(uint32_t (&f)[4], const float* a, int ld, int k0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const float* r0 = a + g * ld + k0 + 2 * t;
    const float* r1 = r0 + 8 * ld;
    f[0] = pair(r0), f[1] = pair(r1), f[2] = pair(r0 + 8), f[3] = pair(r1 + 8);
  }
  static __device__ __forceinline__ void load_b_rows(uint32_t (&f)[2], const float* b, int ld, int k0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const float* r = b + g * ld + k0 + 2 * t;
    f[0] = pair(r), f[1] = pair(r + 8);
  }
  static __device__ __forceinline__ void load_b_cols(uint32_t (&f)[2], const float* b, int ld, int n0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const float* r = b + 2 * t * ld + n0 + g;
    f[0] = pack_bf16(r[0], r[ld]), f[1] = pack_bf16(r[8 * ld], r[9 * ld]);
  }
  // c: the two accumulator n-tiles covering this mma's 16 reduction indices.
  static __device__ __forceinline__ void a_from_c(uint32_t (&f)[4], const float (*c)[4]) {
    f[0] = pack_bf16(c[0][0], c[0][1]), f[1] = pack_bf16(c[0][2], c[0][3]);
    f[2] = pack_bf16(c[1][0], c[1][1]), f[3] = pack_bf16(c[1][2], c[1][3]);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// c[NT] += A·B for one warp: A = 16 rows of `a` (row-major), B(k, n) = b[n][k] for NT
// n-tiles of 8 rows of b. kd: reduction length rounded up to P::K (tiles are zero past
// the true length); KMAX bounds it at compile time so the loops unroll.
template <class P, int NT, int KMAX>
__device__ __forceinline__ void warp_mma_rows(float (&c)[NT][4], const float* a, int lda, const float* b, int ldb,
                                              int kd) {
#pragma unroll
  for (int k0 = 0; k0 < KMAX; k0 += P::K) {
    if (k0 < kd) {
      uint32_t fa[4];
      P::load_a(fa, a, lda, k0);
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        uint32_t fb[2];
        P::load_b_rows(fb, b + j * 8 * ldb, ldb, k0);
        P::mma(c[j], fa, fb);
      }
    }
  }
}

// c[NT] += X·B for one warp, X the 16 × 8·KT matrix held as accumulators x[KT] (e.g. P)
// and B(k, n) = b[k][n] (8·KT rows of b); only the first nt_valid n-tiles of c.
template <class P, int NT, int KT>
__device__ __forceinline__ void warp_mma_regs(float (&c)[NT][4], const float (&x)[KT][4], const float* b, int ldb,
                                              int nt_valid) {
  constexpr int S = P::K / 8;  // accumulator n-tiles per mma
  static_assert(KT % S == 0, "reduction length must be a multiple of the mma depth");
#pragma unroll
  for (int s = 0; s < KT; s += S) {
    uint32_t fa[4];
    P::a_from_c(fa, &x[s]);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      if (j < nt_valid) {
        uint32_t fb[2];
        P::load_b_cols(fb, b + s * 8 * ldb, ldb, j * 8);
        P::mma(c[j], fa, fb);
      }
    }
  }
}

// Starts copying rows [0, rows) × columns [0, cols) of a row-major global matrix (row
// stride ldg) into shared memory (row stride lds); rows >= nrows and columns >= ncols
// are zero-filled. vec: 16-byte copies (cols, ncols, ldg multiples of 4, g 16-byte
// aligned). `g` must point at a valid row (nrows >= 1): invalid copies read nothing.
template <int NT>
__device__ __forceinline__ void async_tile(float* s, int lds, const float* g, int64_t ldg, int rows, int nrows,
                                           int cols, int ncols, bool vec) {
  if (vec) {
    const int c4 = cols >> 2;
    for (int i = threadIdx.x; i < rows * c4; i += NT) {
      const int r = i / c4, c = (i - r * c4) * 4;
      const bool ok = r < nrows && c < ncols;
      cp_async16(s + r * lds + c, ok ? g + r * ldg + c : g, ok);
    }
  } else {
    for (int i = threadIdx.x; i < rows * cols; i += NT) {
      const int r = i / cols, c = i - r * cols;
      const bool ok = r < nrows && c < ncols;
      cp_async4(s + r * lds + c, ok ? g + r * ldg + c : g, ok);
    }
  }
}

// Rounds a tile to TF32 in place (P::kPreround) once it has landed: visits exactly the
// elements this thread copied with async_tile (same arguments, same index mapping), so it
// runs between cp_async_wait and the __syncthreads that publishes the tile.
template <class P, int NT>
__device__ __forceinline__ void preround_tile(float* s, int lds, int rows, int cols, bool vec) {
  if constexpr (P::kPreround) {
    auto rnd = [](float x) { return __uint_as_float(to_tf32(x)); };
    if (vec) {
      const int c4 = cols >> 2;
      for (int i = threadIdx.x; i < rows * c4; i += NT) {
        const int r = i / c4, c = (i - r * c4) * 4;
        float4* p = reinterpret_cast<float4*>(s + r * lds + c);
        const float4 x = *p;
        *p = make_float4(rnd(x.x), rnd(x.y), rnd(x.z), rnd(x.w));
      }
    } else {
      for (int i = threadIdx.x; i < rows * cols; i += NT) {
        const int r = i / cols, c = i - r * cols;
        s[r * lds + c] = rnd(s[r * lds + c]);
      }
    }
  }
}

__device__ __forceinline__ int tile_rows(int64_t n, int64_t start, int tile) {
  return static_cast<int>(n - start < tile ? n - start : tile);
}

// ------------------------------------------------------------------ tensor-core forward

// DM: head dims D, Dv <= DM (32, 64 or 128); tiles sized so shared memory stays < 99 KB
// (the sm_86/89 per-block limit).
template <class P, int DM>
struct FwdTc {
  static constexpr int BR = 64, BC = DM == 128 ? 32 : 64;  // query rows, keys per tile
  static constexpr int LDQ = DM + P::PAD, LDK = DM + P::PAD, LDV = DM + 4;
  static constexpr size_t smem = size_t(BR * LDQ + BC * LDK + BC * LDV) * sizeof(float);
};

template <class P, int DM>
__global__ void __launch_bounds__(128) attn_fwd_tc(const FwdArgs a) {
  using C = FwdTc<P, DM>;
  constexpr int BR = C::BR, BC = C::BC, LDQ = C::LDQ, LDK = C::LDK, LDV = C::LDV;
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);
  float* Ks = Qs + BR * LDQ;
  float* Vs = Ks + BC * LDK;
  const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;

  const int64_t qtiles = (a.Nq + BR - 1) / BR;
  const int64_t bh = blockIdx.x / qtiles, q0 = (blockIdx.x % qtiles) * BR;
  const int nq = tile_rows(a.Nq, q0, BR);
  const float* k = a.k + bh * a.Nk * a.D;
  const float* v = a.v + bh * a.Nk * a.Dv;
  const int dcols = round_up(a.D, 16), vcols = round_up(a.Dv, 16);  // staged columns (zero past D, Dv)
  const int kd = round_up(a.D, P::K), ntv = (a.Dv + 7) / 8;

  async_tile<128>(Qs, LDQ, a.q + (bh * a.Nq + q0) * a.D, a.D, BR, nq, dcols, a.D, a.vec);
  async_tile<128>(Ks, LDK, k, a.D, BC, tile_rows(a.Nk, 0, BC), dcols, a.D, a.vec);
  cp_async_commit();

  float acc[DM / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g+8: running max (log2 units), sum
  const float sl2 = a.scale * kLog2e;
  for (int64_t j0 = 0; j0 < a.Nk; j0 += BC) {
    // K(j) has landed; V(j) streams in while S = Q·K(j)ᵀ is computed.
    cp_async_wait<0>();
    if (j0 == 0) preround_tile<P, 128>(Qs, LDQ, BR, dcols, a.vec);
    preround_tile<P, 128>(Ks, LDK, BC, dcols, a.vec);
    __syncthreads();
    async_tile<128>(Vs, LDV, v + j0 * a.Dv, a.Dv, BC, tile_rows(a.Nk, j0, BC), vcols, a.Dv, a.vec);
    cp_async_commit();
    float s[BC / 8][4] = {};
    warp_mma_rows<P, BC / 8, DM>(s, Qs + warp * 16 * LDQ, LDQ, Ks, LDK, kd);
    __syncthreads();  // every warp is done with K(j): prefetch K(j+1) during softmax and P·V
    if (j0 + BC < a.Nk)
      async_tile<128>(Ks, LDK, k + (j0 + BC) * a.D, a.D, BC, tile_rows(a.Nk, j0 + BC, BC), dcols, a.D, a.vec);
    cp_async_commit();  // possibly empty: keeps the group count uniform for wait<1> below

    // Online softmax: x = scale·s·log2 e; m' = max(m, max_j x); acc, l *= 2^(m − m'); p = 2^(x − m').
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int j = 0; j < BC / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t key = j0 + j * 8 + 2 * t + (i & 1);
        s[j][i] = key < a.Nk ? s[j][i] * sl2 : -INFINITY;
        mx[i >> 1] = fmaxf(mx[i >> 1], s[j][i]);
      }
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = quad_max(mx[r]);  // every tile has a valid key, so mx is finite
      alpha[r] = exp2f(m[r] - mx[r]);
      m[r] = mx[r];
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int j = 0; j < BC / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[j][i] = exp2f(s[j][i] - m[i >> 1]);
        l[i >> 1] += s[j][i];  // this thread's columns only; summed over the quad at the end
      }
#pragma unroll
    for (int j = 0; j < DM / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] *= alpha[i >> 1];

    cp_async_wait<1>();  // V(j) has landed (K(j+1) may still be in flight)
    preround_tile<P, 128>(Vs, LDV, BC, vcols, a.vec);
    __syncthreads();
    warp_mma_regs<P, DM / 8, BC / 8>(acc, s, Vs, LDV, ntv);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp * 16 + g + 8 * r;
    const float lr = quad_sum(l[r]);
    if (row >= nq) continue;
    const float inv = 1.f / lr;
    float* o = a.o + (bh * a.Nq + q0 + row) * a.Dv;
#pragma unroll
    for (int j = 0; j < DM / 8; ++j) {
      const int col = j * 8 + 2 * t;
      if (col < a.Dv) o[col] = acc[j][2 * r] * inv;
      if (col + 1 < a.Dv) o[col + 1] = acc[j][2 * r + 1] * inv;
    }
    if (t == 0) a.lse[bh * a.Nq + q0 + row] = (m[r] + log2f(lr)) * kLn2;
  }
}

// ------------------------------------------------------------------ tensor-core backward

template <class P, int DM>
struct BwdTc {
  // dK/dV pass: 64 keys per block (16 per warp: the output rows), query tiles of BQ.
  static constexpr int KV_BK = 64, KV_BQ = DM == 128 ? 16 : DM == 64 ? 32 : 64;
  static constexpr int KV_LDK = DM + P::PAD, KV_LDV = DM + P::PAD;  // A operands
  static constexpr int KV_LDQ = DM + 4, KV_LDO = DM + 4;            // read as rows (Sᵀ, dPᵀ) and as columns (dK, dV)
  static constexpr size_t kv_smem = size_t(KV_BK * (KV_LDK + KV_LDV) + KV_BQ * (KV_LDQ + KV_LDO) + 2 * KV_BQ) * sizeof(float);
  // dQ pass: 64 queries per block (16 per warp), key tiles of BK.
  static constexpr int Q_BQ = 64, Q_BK = DM == 128 ? 16 : DM == 64 ? 32 : 64;
  static constexpr int Q_LDQ = DM + P::PAD, Q_LDO = DM + P::PAD, Q_LDV = DM + P::PAD;
  static constexpr int Q_LDK = DM + 4;  // read as rows (S) and as columns (dQ)
  static constexpr size_t q_smem = size_t(Q_BQ * (Q_LDQ + Q_LDO) + Q_BK * (Q_LDK + Q_LDV)) * sizeof(float);
};

template <class P, int DM>
__global__ void __launch_bounds__(128) attn_bwd_dkdv_tc(const BwdArgs a) {
  using C = BwdTc<P, DM>;
  constexpr int BK = C::KV_BK, BQ = C::KV_BQ, LDK = C::KV_LDK, LDV = C::KV_LDV, LDQ = C::KV_LDQ, LDO = C::KV_LDO;
  extern __shared__ float4 smem4[];
  float* Ks = reinterpret_cast<float*>(smem4);
  float* Vs = Ks + BK * LDK;
  float* Qs = Vs + BK * LDV;
  float* Os = Qs + BQ * LDQ;  // dO
  float* Ls = Os + BQ * LDO;  // lse · log2 e (+inf past Nq: P = 0 there)
  float* Ds = Ls + BQ;        // delta (0 past Nq)
  const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;

  const int64_t ktiles = (a.Nk + BK - 1) / BK;
  const int64_t bh = blockIdx.x / ktiles, k0 = (blockIdx.x % ktiles) * BK;
  const int nk = tile_rows(a.Nk, k0, BK);
  const float* q = a.q + bh * a.Nq * a.D;
  const float* go = a.go + bh * a.Nq * a.Dv;
  const float* lse = a.lse + bh * a.Nq;
  const float* delta = a.delta + bh * a.Nq;
  const int dcols = round_up(a.D, 16), vcols = round_up(a.Dv, 16);
  const int kd = round_up(a.D, P::K), kdv = round_up(a.Dv, P::K), ntd = (a.D + 7) / 8, ntv = (a.Dv + 7) / 8;

  async_tile<128>(Ks, LDK, a.k + (bh * a.Nk + k0) * a.D, a.D, BK, nk, dcols, a.D, a.vec);
  async_tile<128>(Vs, LDV, a.v + (bh * a.Nk + k0) * a.Dv, a.Dv, BK, nk, vcols, a.Dv, a.vec);
  cp_async_commit();

  float dk[DM / 8][4] = {}, dv[DM / 8][4] = {};
  const float sl2 = a.scale * kLog2e;
  for (int64_t i0 = 0; i0 < a.Nq; i0 += BQ) {
    const int nq = tile_rows(a.Nq, i0, BQ);
    __syncthreads();  // every warp is done with the previous query tile
    async_tile<128>(Qs, LDQ, q + i0 * a.D, a.D, BQ, nq, dcols, a.D, a.vec);
    async_tile<128>(Os, LDO, go + i0 * a.Dv, a.Dv, BQ, nq, vcols, a.Dv, a.vec);
    cp_async_commit();
    for (int r = threadIdx.x; r < BQ; r += 128) {
      Ls[r] = r < nq ? lse[i0 + r] * kLog2e : INFINITY;
      Ds[r] = r < nq ? delta[i0 + r] : 0.f;
    }
    cp_async_wait<0>();
    if (i0 == 0) {
      preround_tile<P, 128>(Ks, LDK, BK, dcols, a.vec);
      preround_tile<P, 128>(Vs, LDV, BK, vcols, a.vec);
    }
    preround_tile<P, 128>(Qs, LDQ, BQ, dcols, a.vec);
    preround_tile<P, 128>(Os, LDO, BQ, vcols, a.vec);
    __syncthreads();

    // Sᵀ = K·Qᵀ (this warp's 16 keys × BQ queries) → Pᵀ = 2^(scale·log2e·Sᵀ − lse·log2e).
    float pt[BQ / 8][4] = {};
    warp_mma_rows<P, BQ / 8, DM>(pt, Ks + warp * 16 * LDK, LDK, Qs, LDQ, kd);
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) pt[j][i] = exp2f(pt[j][i] * sl2 - Ls[j * 8 + 2 * t + (i & 1)]);
    // dPᵀ = V·dOᵀ; dV += Pᵀ·dO; dSᵀ = Pᵀ∘(dPᵀ − delta); dK += dSᵀ·Q.
    float dst[BQ / 8][4] = {};
    warp_mma_rows<P, BQ / 8, DM>(dst, Vs + warp * 16 * LDV, LDV, Os, LDO, kdv);
    warp_mma_regs<P, DM / 8, BQ / 8>(dv, pt, Os, LDO, ntv);
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) dst[j][i] = pt[j][i] * (dst[j][i] - Ds[j * 8 + 2 * t + (i & 1)]);
    warp_mma_regs<P, DM / 8, BQ / 8>(dk, dst, Qs, LDQ, ntd);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp * 16 + g + 8 * r;
    if (row >= nk) continue;
    float* gk = a.gk + (bh * a.Nk + k0 + row) * a.D;
    float* gv = a.gv + (bh * a.Nk + k0 + row) * a.Dv;
#pragma unroll
    for (int j = 0; j < DM / 8; ++j) {
      const int col = j * 8 + 2 * t;
      if (col < a.D) gk[col] = dk[j][2 * r] * a.scale;
      if (col + 1 < a.D) gk[col + 1] = dk[j][2 * r + 1] * a.scale;
      if (col < a.Dv) gv[col] = dv[j][2 * r];
      if (col + 1 < a.Dv) gv[col + 1] = dv[j][2 * r + 1];
    }
  }
}

template <class P, int DM>
__global__ void __launch_bounds__(128) attn_bwd_dq_tc(const BwdArgs a) {
  using C = BwdTc<P, DM>;
  constexpr int BQ = C::Q_BQ, BK = C::Q_BK, LDQ = C::Q_LDQ, LDO = C::Q_LDO, LDK = C::Q_LDK, LDV = C::Q_LDV;
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);
  float* Os = Qs + BQ * LDQ;  // dO
  float* Ks = Os + BQ * LDO;
  float* Vs = Ks + BK * LDK;
  const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;

  const int64_t qtiles = (a.Nq + BQ - 1) / BQ;
  const int64_t bh = blockIdx.x / qtiles, q0 = (blockIdx.x % qtiles) * BQ;
  const int nq = tile_rows(a.Nq, q0, BQ);
  const float* k = a.k + bh * a.Nk * a.D;
  const float* v = a.v + bh * a.Nk * a.Dv;
  const int dcols = round_up(a.D, 16), vcols = round_up(a.Dv, 16);
  const int kd = round_up(a.D, P::K), kdv = round_up(a.Dv, P::K), ntd = (a.D + 7) / 8;

  async_tile<128>(Qs, LDQ, a.q + (bh * a.Nq + q0) * a.D, a.D, BQ, nq, dcols, a.D, a.vec);
  async_tile<128>(Os, LDO, a.go + (bh * a.Nq + q0) * a.Dv, a.Dv, BQ, nq, vcols, a.Dv, a.vec);
  cp_async_commit();
  float l2[2], dl[2];  // lse·log2 e and delta of rows g, g+8 (+inf and 0 past Nq: P = 0 there)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp * 16 + g + 8 * r;
    l2[r] = row < nq ? a.lse[bh * a.Nq + q0 + row] * kLog2e : INFINITY;
    dl[r] = row < nq ? a.delta[bh * a.Nq + q0 + row] : 0.f;
  }

  float dq[DM / 8][4] = {};
  const float sl2 = a.scale * kLog2e;
  for (int64_t j0 = 0; j0 < a.Nk; j0 += BK) {
    const int nk = tile_rows(a.Nk, j0, BK);
    __syncthreads();  // every warp is done with the previous key tile
    async_tile<128>(Ks, LDK, k + j0 * a.D, a.D, BK, nk, dcols, a.D, a.vec);
    async_tile<128>(Vs, LDV, v + j0 * a.Dv, a.Dv, BK, nk, vcols, a.Dv, a.vec);
    cp_async_commit();
    cp_async_wait<0>();
    if (j0 == 0) {
      preround_tile<P, 128>(Qs, LDQ, BQ, dcols, a.vec);
      preround_tile<P, 128>(Os, LDO, BQ, vcols, a.vec);
    }
    preround_tile<P, 128>(Ks, LDK, BK, dcols, a.vec);
    preround_tile<P, 128>(Vs, LDV, BK, vcols, a.vec);
    __syncthreads();

    float s[BK / 8][4] = {}, dp[BK / 8][4] = {};
    warp_mma_rows<P, BK / 8, DM>(s, Qs + warp * 16 * LDQ, LDQ, Ks, LDK, kd);
    warp_mma_rows<P, BK / 8, DM>(dp, Os + warp * 16 * LDO, LDO, Vs, LDV, kdv);
    // dS = P∘(dP − delta), P = 2^(scale·log2e·S − lse·log2e); keys past Nk get P = 0.
#pragma unroll
    for (int j = 0; j < BK / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const bool valid = j * 8 + 2 * t + (i & 1) < nk;
        const float p = valid ? exp2f(s[j][i] * sl2 - l2[i >> 1]) : 0.f;
        s[j][i] = p * (dp[j][i] - dl[i >> 1]);
      }
    warp_mma_regs<P, DM / 8, BK / 8>(dq, s, Ks, LDK, ntd);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp * 16 + g + 8 * r;
    if (row >= nq) continue;
    float* gq = a.gq + (bh * a.Nq + q0 + row) * a.D;
#pragma unroll
    for (int j = 0; j < DM / 8; ++j) {
      const int col = j * 8 + 2 * t;
      if (col < a.D) gq[col] = dq[j][2 * r] * a.scale;
      if (col + 1 < a.D) gq[col + 1] = dq[j][2 * r + 1] * a.scale;
    }
  }
}

// delta_i = Σ_c dO_ic · O_ic (FlashAttention-2, Algorithm 2 line 4): one warp per row.
__global__ void attn_delta(const float* o, const float* go, float* delta, int64_t rows, int Dv) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    float sum = 0.f;
    for (int c = lane; c < Dv; c += 32) sum += o[r * Dv + c] * go[r * Dv + c];
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) delta[r] = sum;
  }
}

// ------------------------------------------------------------------ float32 FMA path
//
// 256 threads as 16 × 16 (ty, tx); 64×64 tiles; thread (ty, tx) owns rows ty + 16i and
// columns tx + 16j (i, j < 4). A row's 64 columns live in 16 consecutive lanes, so row
// reductions are 4 xor-shuffles. Shared memory: As|Bs (reduction chunks, stride 33: the
// column reads are conflict-free), aliased by Rs (a 64×64 right operand, stride 65), and
// Ps (a 64×64 left operand such as P or dS).

constexpr int kST = 64, kSDK = 32, kSLD = kSDK + 1, kPLD = kST + 1;
constexpr int kSimtFloats = 2 * kST * kSLD + kST * kPLD;
static_assert(kST * kPLD <= 2 * kST * kSLD, "Rs must fit in the As|Bs region it aliases");

// acc[i][j] += Σ_{d < len} A[ty+16i][d] · B[tx+16j][d] for 64-row tiles of two row-major
// matrices with row stride len (na, nb valid rows; the rest count as zero).
__device__ void simt_dot(float (&acc)[4][4], const float* A, int na, const float* B, int nb, int len, float* As,
                         float* Bs) {
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  for (int d0 = 0; d0 < len; d0 += kSDK) {
    const int w = min(kSDK, len - d0);
    __syncthreads();  // previous readers of As/Bs (and of Rs, which aliases them) are done
    for (int x = threadIdx.x; x < kST * kSDK; x += 256) {
      const int r = x / kSDK, c = x % kSDK;
      As[r * kSLD + c] = r < na && c < w ? A[int64_t(r) * len + d0 + c] : 0.f;
      Bs[r * kSLD + c] = r < nb && c < w ? B[int64_t(r) * len + d0 + c] : 0.f;
    }
    __syncthreads();
#pragma unroll 8
    for (int d = 0; d < kSDK; ++d) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[(ty + 16 * i) * kSLD + d], bv[i] = Bs[(tx + 16 * i) * kSLD + d];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
  }
}

// Rs = rows [0, 64) × columns [c0, c0+64) of R (row stride ld; nr valid rows, ncols columns), zero-padded.
__device__ void simt_stage(float* Rs, const float* R, int nr, int64_t ld, int c0, int ncols) {
  for (int x = threadIdx.x; x < kST * kST; x += 256) {
    const int r = x / kST, c = x % kST;
    Rs[r * kPLD + c] = r < nr && c0 + c < ncols ? R[r * ld + c0 + c] : 0.f;
  }
}

// acc[i][j] += Σ_k Ps[ty+16i][k] · Rs[k][tx+16j].
__device__ void simt_mm(float (&acc)[4][4], const float* Ps, const float* Rs) {
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll 8
  for (int k = 0; k < kST; ++k) {
    float pv[4], rv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) pv[i] = Ps[(ty + 16 * i) * kPLD + k], rv[i] = Rs[k * kPLD + tx + 16 * i];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(pv[i], rv[j], acc[i][j]);
  }
}

__device__ void simt_store_p(float* Ps, const float (&p)[4][4]) {
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) Ps[(ty + 16 * i) * kPLD + tx + 16 * j] = p[i][j];
}

__device__ __forceinline__ float row16_max(float x) {
  for (int off = 8; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}
__device__ __forceinline__ float row16_sum(float x) {
  for (int off = 8; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// Forward; gridDim.y splits Dv into 64-column chunks (each recomputes the scores).
__global__ void __launch_bounds__(256) attn_fwd_simt(const FwdArgs a) {
  __shared__ float sm[kSimtFloats];
  float *As = sm, *Bs = sm + kST * kSLD, *Rs = sm, *Ps = sm + 2 * kST * kSLD;
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t qtiles = (a.Nq + kST - 1) / kST;
  const int64_t bh = blockIdx.x / qtiles, q0 = (blockIdx.x % qtiles) * kST;
  const int nq = tile_rows(a.Nq, q0, kST), c0 = blockIdx.y * kST;
  const float* q = a.q + (bh * a.Nq + q0) * a.D;
  const float* k = a.k + bh * a.Nk * a.D;
  const float* v = a.v + bh * a.Nk * a.Dv;
  const float sl2 = a.scale * kLog2e;

  float acc[4][4] = {}, m[4], l[4];
  for (int i = 0; i < 4; ++i) m[i] = -INFINITY, l[i] = 0.f;
  for (int64_t j0 = 0; j0 < a.Nk; j0 += kST) {
    const int nk = tile_rows(a.Nk, j0, kST);
    float s[4][4] = {};
    simt_dot(s, q, nq, k + j0 * a.D, nk, a.D, As, Bs);
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // online softmax, as in the tensor-core kernel
      float mx = m[i];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = tx + 16 * j < nk ? s[i][j] * sl2 : -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
      mx = row16_max(mx);
      const float alpha = exp2f(m[i] - mx);
      m[i] = mx;
      l[i] *= alpha;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = exp2f(s[i][j] - mx);
        l[i] += s[i][j];
        acc[i][j] *= alpha;
      }
    }
    __syncthreads();  // done with As/Bs (aliased by Rs) and with the previous Ps
    simt_store_p(Ps, s);
    simt_stage(Rs, v + j0 * a.Dv, nk, a.Dv, c0, a.Dv);
    __syncthreads();
    simt_mm(acc, Ps, Rs);
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int row = ty + 16 * i;
    const float lr = row16_sum(l[i]);
    if (row >= nq) continue;
    float* o = a.o + (bh * a.Nq + q0 + row) * a.Dv;
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (c0 + tx + 16 * j < a.Dv) o[c0 + tx + 16 * j] = acc[i][j] / lr;
    if (blockIdx.y == 0 && tx == 0) a.lse[bh * a.Nq + q0 + row] = (m[i] + log2f(lr)) * kLn2;
  }
}

// dQ; gridDim.y splits D into 64-column chunks.
__global__ void __launch_bounds__(256) attn_bwd_dq_simt(const BwdArgs a) {
  __shared__ float sm[kSimtFloats];
  float *As = sm, *Bs = sm + kST * kSLD, *Rs = sm, *Ps = sm + 2 * kST * kSLD;
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t qtiles = (a.Nq + kST - 1) / kST;
  const int64_t bh = blockIdx.x / qtiles, q0 = (blockIdx.x % qtiles) * kST;
  const int nq = tile_rows(a.Nq, q0, kST), c0 = blockIdx.y * kST;
  const float* q = a.q + (bh * a.Nq + q0) * a.D;
  const float* go = a.go + (bh * a.Nq + q0) * a.Dv;
  const float* k = a.k + bh * a.Nk * a.D;
  const float* v = a.v + bh * a.Nk * a.Dv;
  const float sl2 = a.scale * kLog2e;
  float l2[4], dl[4];
  for (int i = 0; i < 4; ++i) {
    const int row = ty + 16 * i;
    l2[i] = row < nq ? a.lse[bh * a.Nq + q0 + row] * kLog2e : INFINITY;
    dl[i] = row < nq ? a.delta[bh * a.Nq + q0 + row] : 0.f;
  }

  float acc[4][4] = {};
  for (int64_t j0 = 0; j0 < a.Nk; j0 += kST) {
    const int nk = tile_rows(a.Nk, j0, kST);
    float s[4][4] = {}, dp[4][4] = {};
    simt_dot(s, q, nq, k + j0 * a.D, nk, a.D, As, Bs);
    simt_dot(dp, go, nq, v + j0 * a.Dv, nk, a.Dv, As, Bs);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float p = tx + 16 * j < nk ? exp2f(s[i][j] * sl2 - l2[i]) : 0.f;
        s[i][j] = p * (dp[i][j] - dl[i]);  // dS
      }
    __syncthreads();
    simt_store_p(Ps, s);
    simt_stage(Rs, k + j0 * a.D, nk, a.D, c0, a.D);
    __syncthreads();
    simt_mm(acc, Ps, Rs);
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int row = ty + 16 * i;
    if (row >= nq) continue;
    float* gq = a.gq + (bh * a.Nq + q0 + row) * a.D;
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (c0 + tx + 16 * j < a.D) gq[c0 + tx + 16 * j] = acc[i][j] * a.scale;
  }
}

// dK and dV; the block's rows are keys and its columns queries (Sᵀ), so P and dS are
// the left operands of dV += Pᵀ·dO and dK += dSᵀ·Q. gridDim.y splits max(D, Dv).
__global__ void __launch_bounds__(256) attn_bwd_dkdv_simt(const BwdArgs a) {
  __shared__ float sm[kSimtFloats];
  float *As = sm, *Bs = sm + kST * kSLD, *Rs = sm, *Ps = sm + 2 * kST * kSLD;
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t ktiles = (a.Nk + kST - 1) / kST;
  const int64_t bh = blockIdx.x / ktiles, k0 = (blockIdx.x % ktiles) * kST;
  const int nk = tile_rows(a.Nk, k0, kST), c0 = blockIdx.y * kST;
  const float* k = a.k + (bh * a.Nk + k0) * a.D;
  const float* v = a.v + (bh * a.Nk + k0) * a.Dv;
  const float* q = a.q + bh * a.Nq * a.D;
  const float* go = a.go + bh * a.Nq * a.Dv;
  const float sl2 = a.scale * kLog2e;

  float dk[4][4] = {}, dv[4][4] = {};
  for (int64_t i0 = 0; i0 < a.Nq; i0 += kST) {
    const int nq = tile_rows(a.Nq, i0, kST);
    float pt[4][4] = {}, dst[4][4] = {};
    simt_dot(pt, k, nk, q + i0 * a.D, nq, a.D, As, Bs);             // Sᵀ
    simt_dot(dst, v, nk, go + i0 * a.Dv, nq, a.Dv, As, Bs);         // dPᵀ
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = tx + 16 * j;
      const bool valid = col < nq;
      const float l2 = valid ? a.lse[bh * a.Nq + i0 + col] * kLog2e : INFINITY;
      const float dl = valid ? a.delta[bh * a.Nq + i0 + col] : 0.f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        pt[i][j] = exp2f(pt[i][j] * sl2 - l2);
        dst[i][j] = pt[i][j] * (dst[i][j] - dl);
      }
    }
    __syncthreads();
    simt_store_p(Ps, pt);
    simt_stage(Rs, go + i0 * a.Dv, nq, a.Dv, c0, a.Dv);
    __syncthreads();
    if (c0 < a.Dv) simt_mm(dv, Ps, Rs);
    __syncthreads();
    simt_store_p(Ps, dst);
    simt_stage(Rs, q + i0 * a.D, nq, a.D, c0, a.D);
    __syncthreads();
    if (c0 < a.D) simt_mm(dk, Ps, Rs);
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int row = ty + 16 * i;
    if (row >= nk) continue;
    float* gk = a.gk + (bh * a.Nk + k0 + row) * a.D;
    float* gv = a.gv + (bh * a.Nk + k0 + row) * a.Dv;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = c0 + tx + 16 * j;
      if (col < a.D) gk[col] = dk[i][j] * a.scale;
      if (col < a.Dv) gv[col] = dv[i][j];
    }
  }
}

// ------------------------------------------------------------------ host side

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

unsigned grid_blocks(int64_t bh, int64_t n, int tile, const char* op) {
  const int64_t blocks = bh * ((n + tile - 1) / tile);
  if (blocks > INT_MAX) fail(ErrorCode::Shape, op, ": ", blocks, " thread blocks exceed the CUDA grid limit");
  return unsigned(blocks);
}

template <typename Kernel, typename Args>
void launch(Kernel kernel, dim3 grid, int threads, size_t smem, const Args& a, const char* op) {
  if (smem > 48 * 1024) check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), op);
  kernel<<<grid, threads, smem, stream()>>>(a);
  check_launch(op);
}

// Tensor cores need head dims the register tiles cover and a precision below "highest".
bool use_tensor_cores(const AttentionShape& s) {
  return matmul_precision() != MatmulPrecision::Highest && s.D <= 128 && s.Dv <= 128;
}
int head_tile(const AttentionShape& s) {
  const int64_t d = s.D > s.Dv ? s.D : s.Dv;
  return d <= 32 ? 32 : d <= 64 ? 64 : 128;
}

template <class P, int DM>
void forward_tc(const AttentionShape& s, const FwdArgs& a) {
  using C = FwdTc<P, DM>;
  launch(attn_fwd_tc<P, DM>, dim3(grid_blocks(s.B * s.H, s.Nq, C::BR, "attention")), 128, C::smem, a, "attention");
}

template <class P, int DM>
void backward_tc(const AttentionShape& s, const BwdArgs& a) {
  using C = BwdTc<P, DM>;
  const int64_t bh = s.B * s.H;
  launch(attn_bwd_dkdv_tc<P, DM>, dim3(grid_blocks(bh, s.Nk, C::KV_BK, "attention_backward")), 128, C::kv_smem, a,
         "attention_backward");
  launch(attn_bwd_dq_tc<P, DM>, dim3(grid_blocks(bh, s.Nq, C::Q_BQ, "attention_backward")), 128, C::q_smem, a,
         "attention_backward");
}

template <class P>
void forward_tc(const AttentionShape& s, const FwdArgs& a) {
  switch (head_tile(s)) {
    case 32: return forward_tc<P, 32>(s, a);
    case 64: return forward_tc<P, 64>(s, a);
    default: return forward_tc<P, 128>(s, a);
  }
}

template <class P>
void backward_tc(const AttentionShape& s, const BwdArgs& a) {
  switch (head_tile(s)) {
    case 32: return backward_tc<P, 32>(s, a);
    case 64: return backward_tc<P, 64>(s, a);
    default: return backward_tc<P, 128>(s, a);
  }
}

unsigned column_chunks(int64_t cols) { return unsigned(cols <= 0 ? 1 : (cols + kST - 1) / kST); }

void check_dims(const AttentionShape& s, const char* op) {
  if (s.D > INT_MAX / 2 || s.Dv > INT_MAX / 2 || (s.D + kST - 1) / kST > 65535 || (s.Dv + kST - 1) / kST > 65535)
    fail(ErrorCode::Shape, op, ": head dims ", s.D, ", ", s.Dv, " are too large for the CUDA kernels");
}

}  // namespace

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse) {
  const int64_t bh = s.B * s.H;
  if (bh <= 0 || s.Nq <= 0) return;
  if (s.Nk <= 0) {  // empty softmax: o = 0, lse = -inf (as on the CPU)
    fill(o, bh * s.Nq * s.Dv, 0.f);
    fill(lse, bh * s.Nq, -INFINITY);
    return;
  }
  check_dims(s, "attention");
  const bool vec = s.D % 4 == 0 && s.Dv % 4 == 0 && aligned16(q) && aligned16(k) && aligned16(v);
  const FwdArgs a{q, k, v, o, lse, s.Nq, s.Nk, int(s.D), int(s.Dv), s.scale, vec};
  if (use_tensor_cores(s)) {
    if (matmul_precision() == MatmulPrecision::Medium) forward_tc<Bf16>(s, a);
    else forward_tc<Tf32>(s, a);
    return;
  }
  launch(attn_fwd_simt, dim3(grid_blocks(bh, s.Nq, kST, "attention"), column_chunks(s.Dv)), 256, 0, a, "attention");
}

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv) {
  const int64_t bh = s.B * s.H;
  if (bh <= 0) return;
  if (s.Nq <= 0 || s.Nk <= 0) {  // nothing flows: all gradients are zero
    fill(gq, bh * s.Nq * s.D, 0.f);
    fill(gk, bh * s.Nk * s.D, 0.f);
    fill(gv, bh * s.Nk * s.Dv, 0.f);
    return;
  }
  check_dims(s, "attention_backward");
  const int64_t rows = bh * s.Nq;
  Scratch delta(size_t(rows) * sizeof(float), "attention_backward");
  attn_delta<<<grid_for(rows * 32), 256, 0, stream()>>>(o, go, delta.get(), rows, int(s.Dv));
  check_launch("attention_backward");

  const bool vec = s.D % 4 == 0 && s.Dv % 4 == 0 && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(go);
  const BwdArgs a{q, k, v, go, lse, delta.get(), gq, gk, gv, s.Nq, s.Nk, int(s.D), int(s.Dv), s.scale, vec};
  if (use_tensor_cores(s)) {
    if (matmul_precision() == MatmulPrecision::Medium) backward_tc<Bf16>(s, a);
    else backward_tc<Tf32>(s, a);
    return;
  }
  launch(attn_bwd_dkdv_simt, dim3(grid_blocks(bh, s.Nk, kST, "attention_backward"), column_chunks(s.D > s.Dv ? s.D : s.Dv)),
         256, 0, a, "attention_backward");
  launch(attn_bwd_dq_simt, dim3(grid_blocks(bh, s.Nq, kST, "attention_backward"), column_chunks(s.D)), 256, 0, a,
         "attention_backward");
}

}  // namespace fd::cuda
