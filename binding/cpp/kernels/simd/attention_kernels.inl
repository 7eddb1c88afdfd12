// Shared body of the SIMD attention kernels (FlashAttention-2 style, blocked,
// online softmax), textually included by avx2/attention_avx2.cc and
// avx512/attention_avx512.cc, each compiled with its own -m flags.
//
// Layout trick: every score block is held TRANSPOSED, keys × queries, with the
// queries along the vector lanes (S^T[j][i]). Then the softmax statistics of a
// query (running max m_i, running sum l_i) live in one lane of a vector, so the
// row max / row sum / rescale are plain vertical vector ops with no horizontal
// reductions, and every block product is the same small register-tiled kernel
// (simd/attention_tile.inl):
//     C[r][cols] (=, +=, or ·cs[r] +=) Σ_t A(r, t) · Y[t][cols]
// (A broadcast with arbitrary strides, Y loaded as vectors along cols).
// The query block is transposed once (Q^T, scaled by scale·log2 e so the softmax
// uses exp2). The forward accumulates O in the output rows themselves, P^T read
// down its columns as A: no transpose back (it was 7.6% of the DiT's attention).
//
// The including file must, before the #include:
//   - include <immintrin.h>, <math.h> (INFINITY), <cstddef>, <cstdint> and
//     "kernels/attention_impl.h", and open an anonymous namespace inside
//     fd::kernels::impl (everything here must keep internal linkage: the two
//     compilations may never share an ODR-visible symbol, so no std:: templates
//     or inline library functions here);
//   - include simd/attention_tile.inl and define the column dispatch
//     gemm<ACC, CS>(rows, ncols, T, A, ars, ats, Y, ldy, C, ldc, cs) on top of it;
//   - define, besides what the tile needs: M (lane predicate of a compare),
//     tail_mask(n) (first n lanes, all when n >= W), vset vloada vstorea (aligned),
//     vadd vsub vdiv vmax vround vge vgt, vmul_if / vadd_if(k, a, b) (a·b / a+b in
//     the lanes of k, a elsewhere), kPlainFullStores (full rows of transpose_out use
//     a plain store instead of the masked one), the exp2 pieces exp2_arg(x) (the
//     argument to reduce) and exp2_scale(p, n, live) (p·2^n in the live lanes, 0
//     elsewhere), mant_exp(x, m, e) (x = m·2^e, m in [1, 2)) and transpose(r)
//     (in-register W × W transpose of r[0..W-1]).
// It defines fwd_tasks, fwd_scratch_floats, fwd_range, bwd_scratch_floats and
// bwd_range, which the ISA's exported entry points (kernels/attention_impl.h) forward to.

constexpr int BQ = 64;  // queries per block (BQ / W vectors of lanes)
constexpr int BK = 64;  // keys per block (32/64/128 measured within 1-2% on AVX-512)
constexpr float kLog2e = 1.44269504088896340736f;
constexpr double kLn2 = 0.69314718055994530942;

// 2^x for x <= ~127. Lanes with x < -126 (including -inf) give exactly 0, so no
// denormals are produced. Degree-6 polynomial for 2^f on f in [-0.5, 0.5]
// (relative error ~2e-9 before rounding; ~1 ulp in float), scaled by 2^n.
static inline V exp2v(V x) {
  const M live = vge(x, vset(-126.f));
  const V xc = exp2_arg(x);
  const V n = vround(xc);
  const V f = vsub(xc, n);
  V p = vset(1.5353725757449865e-04f);
  p = vfma(p, f, vset(1.3398868031799793e-03f));
  p = vfma(p, f, vset(9.6184359863400460e-03f));
  p = vfma(p, f, vset(5.5503323674201965e-02f));
  p = vfma(p, f, vset(2.4022647738456726e-01f));
  p = vfma(p, f, vset(6.9314718246459960e-01f));
  p = vfma(p, f, vset(1.0f));
  return exp2_scale(p, n, live);
}

// log2(x) for finite x > 0 (normal x on AVX2): x = m·2^e with m in [sqrt(1/2), sqrt(2)), then
// log2(m) = (2/ln 2)·atanh(z), z = (m-1)/(m+1), |z| < 0.172 (odd series to z^9,
// truncation error < 1e-9).
static inline V log2v(V x) {
  V m, e;
  mant_exp(x, m, e);  // m in [1, 2)
  const M big = vgt(m, vset(1.41421356f));
  m = vmul_if(big, m, vset(0.5f));
  e = vadd_if(big, e, vset(1.f));
  const V z = vdiv(vsub(m, vset(1.f)), vadd(m, vset(1.f)));
  const V z2 = vmul(z, z);
  V p = vset(1.f / 9.f);
  p = vfma(p, z2, vset(1.f / 7.f));
  p = vfma(p, z2, vset(1.f / 5.f));
  p = vfma(p, z2, vset(1.f / 3.f));
  p = vfma(p, z2, vset(1.f));
  return vfma(vmul(p, z), vset(2.88539008f), e);  // 2/ln 2
}

// dst[c·LQ + i] = src[i·lds + c]·mul for i < nq, c < D; lanes nq..LQ-1 become 0.
static void transpose_in(const float* src, int64_t lds, int64_t nq, int64_t D, float mul, float* dst, int64_t LQ) {
  const V vm = vset(mul);
  for (int64_t i0 = 0; i0 < LQ; i0 += W) {
    const int64_t ni = min64(W, nq - i0);  // >= 1: LQ is the rounded-up nq
    for (int64_t c0 = 0; c0 < D; c0 += W) {
      const int64_t nc = min64(W, D - c0);
      const LM cm = tail_mask(nc);
      V r[W];
      for (int k = 0; k < W; ++k) r[k] = k < ni ? vmul(vloadm(src + (i0 + k) * lds + c0, cm), vm) : vzero();
      transpose(r);
      for (int k = 0; k < nc; ++k) vstore(dst + (c0 + k) * LQ + i0, r[k]);
    }
  }
}

// dst[i·ldd + c] = src[c·LQ + i] for i < nq, c < C.
static void transpose_out(const float* src, int64_t C, int64_t LQ, int64_t nq, float* dst, int64_t ldd) {
  for (int64_t i0 = 0; i0 < nq; i0 += W) {
    const int64_t ni = min64(W, nq - i0);
    for (int64_t c0 = 0; c0 < C; c0 += W) {
      const int64_t nc = min64(W, C - c0);
      const LM cm = tail_mask(nc);
      V r[W];
      for (int k = 0; k < W; ++k) r[k] = k < nc ? vload(src + (c0 + k) * LQ + i0) : vzero();
      transpose(r);
      for (int k = 0; k < ni; ++k) {
        if (kPlainFullStores && nc == W)
          vstore(dst + (i0 + k) * ldd + c0, r[k]);
        else
          vstorem(dst + (i0 + k) * ldd + c0, cm, r[k]);
      }
    }
  }
}

// Queries [i0, i0 + nq) (nq <= BQ) of one head. Token rows are ldq apart in q and k, ldv apart in v and o.
static void fwd_block(const AttentionShape& s, const float* qh, const float* kh, const float* vh, float* oh,
                      float* lseh, int64_t i0, int64_t nq, float* scratch) {
  const int64_t D = s.D, Dv = s.Dv, Nk = s.Nk, ldq = row_stride(s, D), ldv = row_stride(s, Dv);
  const int nv = static_cast<int>((nq + W - 1) / W);
  const int64_t LQ = nv * W;
  float* Qt = scratch;         // D × LQ
  float* S = Qt + D * BQ;      // BK × LQ
  float* m = S + BK * BQ;      // running max (log2 domain)
  float* l = m + BQ;           // running sum
  float* alpha = l + BQ;       // per-block rescale factor

  transpose_in(qh + i0 * ldq, ldq, nq, D, s.scale * kLog2e, Qt, LQ);
  for (int v = 0; v < nv; ++v) {
    vstorea(m + v * W, vset(-INFINITY));
    vstorea(l + v * W, vzero());
  }

  for (int64_t j0 = 0; j0 < Nk; j0 += BK) {
    const int64_t nk = min64(BK, Nk - j0);
    // S^T = K_blk · Q^T   (nk × LQ)
    gemm<false, false>(nk, LQ, D, kh + j0 * ldq, ldq, 1, Qt, LQ, S, LQ, nullptr);
    // online softmax, one lane per query
    for (int v = 0; v < nv; ++v) {
      float* sv = S + v * W;
      V mx = vloada(sv);
      for (int64_t j = 1; j < nk; ++j) mx = vmax(mx, vloada(sv + j * LQ));
      const V mold = vloada(m + v * W);
      const V mnew = vmax(mold, mx);
      const V al = exp2v(vsub(mold, mnew));
      V sum0 = vzero(), sum1 = vzero();
      int64_t j = 0;
      for (; j + 2 <= nk; j += 2) {
        const V p0 = exp2v(vsub(vloada(sv + j * LQ), mnew));
        const V p1 = exp2v(vsub(vloada(sv + (j + 1) * LQ), mnew));
        vstorea(sv + j * LQ, p0);
        vstorea(sv + (j + 1) * LQ, p1);
        sum0 = vadd(sum0, p0);
        sum1 = vadd(sum1, p1);
      }
      if (j < nk) {
        const V p0 = exp2v(vsub(vloada(sv + j * LQ), mnew));
        vstorea(sv + j * LQ, p0);
        sum0 = vadd(sum0, p0);
      }
      vstorea(l + v * W, vfma(vloada(l + v * W), al, vadd(sum0, sum1)));
      vstorea(m + v * W, mnew);
      vstorea(alpha + v * W, al);
    }
    // O = diag(alpha) O + P · V_blk   (nq × Dv, in the output rows)
    float* o = oh + i0 * ldv;
    if (j0 == 0)
      gemm<false, false>(nq, Dv, nk, S, 1, LQ, vh + j0 * ldv, ldv, o, ldv, nullptr);
    else
      gemm<true, true>(nq, Dv, nk, S, 1, LQ, vh + j0 * ldv, ldv, o, ldv, alpha);
  }

  const V ln2 = vset(static_cast<float>(kLn2));
  for (int v = 0; v < nv; ++v) {
    const V lv = vloada(l + v * W);
    const V lse2 = vadd(vloada(m + v * W), log2v(lv));
    vstorem(lseh + i0 + v * W, tail_mask(nq - v * W), vmul(lse2, ln2));
    vstorea(alpha + v * W, vdiv(vset(1.f), lv));
  }
  for (int64_t i = 0; i < nq; ++i) {  // O /= l
    float* o = oh + (i0 + i) * ldv;
    const V inv = vbcast(alpha + i);
    for (int64_t c0 = 0; c0 < Dv; c0 += W) {
      const LM cm = tail_mask(Dv - c0);
      vstorem(o + c0, cm, vmul(vloadm(o + c0, cm), inv));
    }
  }
}

// One head of the backward pass. Token rows are ldq apart in q, k and their gradients, ldv apart in the rest.
static void bwd_head(const AttentionShape& s, const float* qh, const float* kh, const float* vh, const float* oh,
                     const float* lseh, const float* goh, float* gqh, float* gkh, float* gvh, float* scratch) {
  const int64_t D = s.D, Dv = s.Dv, Nk = s.Nk, Nq = s.Nq, ldq = row_stride(s, D), ldv = row_stride(s, Dv);
  float* Qt = scratch;          // D × LQ   (scaled by scale·log2 e)
  float* dOt = Qt + D * BQ;     // Dv × LQ
  float* dQt = dOt + Dv * BQ;   // D × LQ
  float* S = dQt + D * BQ;      // BK × LQ: scores, then P
  float* dP = S + BK * BQ;      // BK × LQ: dP, then scale·dS
  float* lse2 = dP + BK * BQ;   // lse·log2 e
  float* Di = lse2 + BQ;        // rowsum(dO ∘ O)
  const V vscale = vset(s.scale);

  for (int64_t j = 0; j < Nk; ++j) {
    for (int64_t c = 0; c < D; ++c) gkh[j * ldq + c] = 0.f;
    for (int64_t c = 0; c < Dv; ++c) gvh[j * ldv + c] = 0.f;
  }

  for (int64_t i0 = 0; i0 < Nq; i0 += BQ) {
    const int64_t nq = min64(BQ, Nq - i0);
    const int nv = static_cast<int>((nq + W - 1) / W);
    const int64_t LQ = nv * W;
    transpose_in(qh + i0 * ldq, ldq, nq, D, s.scale * kLog2e, Qt, LQ);
    transpose_in(goh + i0 * ldv, ldv, nq, Dv, 1.f, dOt, LQ);
    for (int64_t i = 0; i < LQ; ++i) {
      if (i < nq) {
        lse2[i] = lseh[i0 + i] * kLog2e;
        const float* gr = goh + (i0 + i) * ldv;
        const float* orow = oh + (i0 + i) * ldv;
        float acc = 0.f;
        for (int64_t c = 0; c < Dv; ++c) acc += gr[c] * orow[c];
        Di[i] = acc;
      } else {
        lse2[i] = INFINITY;  // padded lanes: P = 0
        Di[i] = 0.f;
      }
    }
    for (int64_t j0 = 0; j0 < Nk; j0 += BK) {
      const int64_t nk = min64(BK, Nk - j0);
      gemm<false, false>(nk, LQ, D, kh + j0 * ldq, ldq, 1, Qt, LQ, S, LQ, nullptr);      // S^T
      gemm<false, false>(nk, LQ, Dv, vh + j0 * ldv, ldv, 1, dOt, LQ, dP, LQ, nullptr);  // dP^T = V · dO^T
      for (int v = 0; v < nv; ++v) {
        const V l2 = vloada(lse2 + v * W);
        const V di = vloada(Di + v * W);
        for (int64_t j = 0; j < nk; ++j) {
          float* sp = S + j * LQ + v * W;
          float* dp = dP + j * LQ + v * W;
          const V p = exp2v(vsub(vloada(sp), l2));
          const V ds = vmul(vmul(p, vscale), vsub(vloada(dp), di));
          vstorea(sp, p);
          vstorea(dp, ds);
        }
      }
      // dV_blk += P^T-rows · dO_blk ; dK_blk += dS · Q_blk   (reduction over the nq queries)
      gemm<true, false>(nk, Dv, nq, S, LQ, 1, goh + i0 * ldv, ldv, gvh + j0 * ldv, ldv, nullptr);
      gemm<true, false>(nk, D, nq, dP, LQ, 1, qh + i0 * ldq, ldq, gkh + j0 * ldq, ldq, nullptr);
      // dQ^T += K_blk^T · dS^T
      if (j0 == 0)
        gemm<false, false>(D, LQ, nk, kh + j0 * ldq, 1, ldq, dP, LQ, dQt, LQ, nullptr);
      else
        gemm<true, false>(D, LQ, nk, kh + j0 * ldq, 1, ldq, dP, LQ, dQt, LQ, nullptr);
    }
    transpose_out(dQt, D, LQ, nq, gqh + i0 * ldq, ldq);
  }
}

// ---------------------------------------------------------------- entry points
// (what the ISA's exported attention_*_<isa> functions forward to; see kernels/attention_impl.h)

static int64_t fwd_tasks(const AttentionShape& s) { return s.B * s.H * ((s.Nq + BQ - 1) / BQ); }

static size_t fwd_scratch_floats(const AttentionShape& s) {
  return static_cast<size_t>((s.D + BK + 3) * BQ + 64);
}

// fwd_range / bwd_range are always_inline so that each exported function compiles to the
// same code as when the loop was written in it (left to the inliner, GCC allocates the
// registers of the inlined block differently).
__attribute__((always_inline)) static inline void fwd_range(const AttentionShape& s, const float* q, const float* k,
                                                            const float* v, float* o, float* lse, int64_t task_begin,
                                                            int64_t task_end, float* scratch) {
  // The query vectors are dealt evenly over the blocks (196 queries: 64, 48, 48, 36 rather than 64, 64, 64, 4):
  // a block of a few queries runs its products one vector wide, at a fraction of the others' speed.
  const int64_t nqb = (s.Nq + BQ - 1) / BQ, nvec = (s.Nq + W - 1) / W;
  for (int64_t t = task_begin; t < task_end; ++t) {
    const int64_t bh = t / nqb, qb = t % nqb;
    const int64_t i0 = qb * nvec / nqb * W, i1 = min64((qb + 1) * nvec / nqb * W, s.Nq);
    fwd_block(s, q + head_offset(s, bh, s.Nq, s.D), k + head_offset(s, bh, s.Nk, s.D),
              v + head_offset(s, bh, s.Nk, s.Dv), o + head_offset(s, bh, s.Nq, s.Dv), lse + bh * s.Nq, i0, i1 - i0,
              scratch);
  }
}

static size_t bwd_scratch_floats(const AttentionShape& s) {
  return static_cast<size_t>((2 * s.D + s.Dv + 2 * BK + 2) * BQ + 64);
}

__attribute__((always_inline)) static inline void bwd_range(const AttentionShape& s, const float* q, const float* k,
                                                            const float* v, const float* o, const float* lse,
                                                            const float* go, float* gq, float* gk, float* gv,
                                                            int64_t bh_begin, int64_t bh_end, float* scratch) {
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const int64_t qo = head_offset(s, bh, s.Nq, s.D), ko = head_offset(s, bh, s.Nk, s.D);
    const int64_t oo = head_offset(s, bh, s.Nq, s.Dv), vo = head_offset(s, bh, s.Nk, s.Dv);
    bwd_head(s, q + qo, k + ko, v + vo, o + oo, lse + bh * s.Nq, go + oo, gq + qo, gk + ko, gv + vo, scratch);
  }
}
