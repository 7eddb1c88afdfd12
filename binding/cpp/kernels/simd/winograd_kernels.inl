// Winograd F(2×2, 3×3) transforms (see kernels/winograd.h), written once against a
// small per-ISA vector layer and textually included by avx2/winograd_avx2.cc and
// avx512/winograd_avx512.cc, each compiled with its own -m flags. The including file
// opens its ISA namespace and an anonymous namespace (internal linkage only) and
// defines: W (floats per vector), V, vload vstore vloadn vstoren (zero-filled tail
// load, partial store of n < W lanes), vadd vsub vset, and deint(src, n, e, o):
// e[j] = src[2j], o[j] = src[2j + 1] for j < n.
// Arithmetic: additions / subtractions and exact scalings by 0.5 only, the same
// sequence for full vectors and tails (no contraction possible), so a value never
// depends on where it falls in a vector.

// U = G g Gᵀ, G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]; W pairs at a time (the 9
// taps gathered into lanes first).
void wino_weight(const float* w, int64_t P, int64_t p0, int64_t p1, int64_t KS, float* U) {
  alignas(64) float g[9][W];
  const V half = vset(0.5f);
  for (int64_t p = p0; p < p1; p += W) {
    const int64_t n = p1 - p < W ? p1 - p : W;
    for (int64_t l = 0; l < n; ++l)
      for (int r = 0; r < 9; ++r) g[r][l] = w[(p + l) * 9 + r];
    V t[4][3];
    for (int j = 0; j < 3; ++j) {  // t = G g (rows)
      const V a = vload(g[j]), b = vload(g[3 + j]), c = vload(g[6 + j]);
      t[0][j] = a;
      t[1][j] = vmul(half, vadd(vadd(a, b), c));
      t[2][j] = vmul(half, vadd(vsub(a, b), c));
      t[3][j] = c;
    }
    for (int i = 0; i < 4; ++i) {  // U = t Gᵀ (columns)
      const V a = t[i][0], b = t[i][1], c = t[i][2];
      const V u[4] = {a, vmul(half, vadd(vadd(a, b), c)), vmul(half, vadd(vsub(a, b), c)), c};
      for (int j = 0; j < 4; ++j) {
        float* dst = U + (4 * i + j) * KS + p;
        if (n == W)
          vstore(dst, u[j]);
        else
          vstoren(dst, u[j], n);
      }
    }
  }
}

// V = Bᵀ d B, Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]], d the 4×4 input
// patch at rows 2·th − pad + i, columns 2·tw − pad + j. Each input row is split
// into even / odd columns (E[j] = x[2j − pad], O[j] = x[2j + 1 − pad], zero
// outside), so the tile loop reads only contiguous runs, W tiles per vector.
void wino_input(const float* x, int64_t C, int64_t H, int64_t Wd, int64_t pad, int64_t TH, int64_t TW, int64_t r0,
                int64_t r1, int64_t c0, int64_t c1, int64_t T, int64_t KS, float* Vout, float* tmp) {
  const int64_t L = TW + 1, LP = (L + 15) / 16 * 16;
  float* E[4];
  float* O[4];
  for (int i = 0; i < 4; ++i) {
    E[i] = tmp + (2 * i) * LP;
    O[i] = tmp + (2 * i + 1) * LP;
  }
  // j with 0 ≤ 2j − pad and 2j + 1 − pad < W: both columns inside.
  const int64_t jlo = (pad + 1) / 2;
  int64_t jhi = (Wd + pad) / 2;
  if (jhi > L) jhi = L;
  if (jhi < jlo) jhi = jlo;
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / TH, th = r % TH;
      const float* xc = x + (n * C + c) * H * Wd;
      for (int i = 0; i < 4; ++i) {
        const int64_t h = 2 * th - pad + i;
        float* e = E[i];
        float* o = O[i];
        if (h < 0 || h >= H) {
          for (int64_t j = 0; j < L; ++j) e[j] = 0.f, o[j] = 0.f;
          continue;
        }
        const float* xr = xc + h * Wd;
        for (int64_t j = 0; j < jlo && j < L; ++j) {
          const int64_t we = 2 * j - pad, wo = we + 1;
          e[j] = (we >= 0 && we < Wd) ? xr[we] : 0.f;
          o[j] = (wo >= 0 && wo < Wd) ? xr[wo] : 0.f;
        }
        deint(xr - pad + 2 * jlo, jhi - jlo, e + jlo, o + jlo);
        for (int64_t j = jhi; j < L; ++j) {
          const int64_t we = 2 * j - pad, wo = we + 1;
          e[j] = (we >= 0 && we < Wd) ? xr[we] : 0.f;
          o[j] = (wo >= 0 && wo < Wd) ? xr[wo] : 0.f;
        }
      }
      float* v = Vout + c * T + (r - r0) * TW;
      for (int64_t tw = 0; tw < TW; tw += W) {
        const int64_t nn = TW - tw < W ? TW - tw : W;
        V e0, e1, e2, e3, o0, o1, o2, o3, f0, f1, f2, f3, q0, q1, q2, q3;  // e/o at tw, f/q at tw + 1
        if (nn == W) {
          e0 = vload(E[0] + tw), e1 = vload(E[1] + tw), e2 = vload(E[2] + tw), e3 = vload(E[3] + tw);
          o0 = vload(O[0] + tw), o1 = vload(O[1] + tw), o2 = vload(O[2] + tw), o3 = vload(O[3] + tw);
          f0 = vload(E[0] + tw + 1), f1 = vload(E[1] + tw + 1), f2 = vload(E[2] + tw + 1), f3 = vload(E[3] + tw + 1);
          q0 = vload(O[0] + tw + 1), q1 = vload(O[1] + tw + 1), q2 = vload(O[2] + tw + 1), q3 = vload(O[3] + tw + 1);
        } else {
          e0 = vloadn(E[0] + tw, nn), e1 = vloadn(E[1] + tw, nn), e2 = vloadn(E[2] + tw, nn), e3 = vloadn(E[3] + tw, nn);
          o0 = vloadn(O[0] + tw, nn), o1 = vloadn(O[1] + tw, nn), o2 = vloadn(O[2] + tw, nn), o3 = vloadn(O[3] + tw, nn);
          f0 = vloadn(E[0] + tw + 1, nn), f1 = vloadn(E[1] + tw + 1, nn), f2 = vloadn(E[2] + tw + 1, nn),
          f3 = vloadn(E[3] + tw + 1, nn);
          q0 = vloadn(O[0] + tw + 1, nn), q1 = vloadn(O[1] + tw + 1, nn), q2 = vloadn(O[2] + tw + 1, nn),
          q3 = vloadn(O[3] + tw + 1, nn);
        }
        // rows: Bᵀ d on the four columns 2tw (e), 2tw+1 (o), 2tw+2 (f), 2tw+3 (q)
        V a[4][4];
        a[0][0] = vsub(e0, e2), a[0][1] = vsub(o0, o2), a[0][2] = vsub(f0, f2), a[0][3] = vsub(q0, q2);
        a[1][0] = vadd(e1, e2), a[1][1] = vadd(o1, o2), a[1][2] = vadd(f1, f2), a[1][3] = vadd(q1, q2);
        a[2][0] = vsub(e2, e1), a[2][1] = vsub(o2, o1), a[2][2] = vsub(f2, f1), a[2][3] = vsub(q2, q1);
        a[3][0] = vsub(e1, e3), a[3][1] = vsub(o1, o3), a[3][2] = vsub(f1, f3), a[3][3] = vsub(q1, q3);
        for (int i = 0; i < 4; ++i) {  // columns: (·) B
          const V u[4] = {vsub(a[i][0], a[i][2]), vadd(a[i][1], a[i][2]), vsub(a[i][2], a[i][1]),
                          vsub(a[i][1], a[i][3])};
          for (int j = 0; j < 4; ++j) {
            float* dst = v + (4 * i + j) * KS + tw;
            if (nn == W)
              vstore(dst, u[j]);
            else
              vstoren(dst, u[j], nn);
          }
        }
      }
    }
  }
}

// y = Aᵀ m A + bias, Aᵀ = [[1,1,1,0],[0,1,−1,−1]].
void wino_output(const float* M, int64_t OC, int64_t OH, int64_t OW, int64_t TH, int64_t TW, int64_t r0, int64_t r1,
                 int64_t o0, int64_t o1, int64_t T, int64_t KS, const float* bias, float* y, float* tmp) {
  float* yt[4] = {tmp, tmp + TW + W, tmp + 2 * (TW + W), tmp + 3 * (TW + W)};  // y00 y01 y10 y11
  for (int64_t oc = o0; oc < o1; ++oc) {
    const V bv = vset(bias ? bias[oc] : 0.f);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / TH, th = r % TH;
      const float* m = M + oc * T + (r - r0) * TW;
      for (int64_t tw = 0; tw < TW; tw += W) {
        const int64_t nn = TW - tw < W ? TW - tw : W;
        V s0[4], s1[4];
        for (int j = 0; j < 4; ++j) {
          V m0, m1, m2, m3;
          if (nn == W) {
            m0 = vload(m + (0 + j) * KS + tw), m1 = vload(m + (4 + j) * KS + tw);
            m2 = vload(m + (8 + j) * KS + tw), m3 = vload(m + (12 + j) * KS + tw);
          } else {
            m0 = vloadn(m + (0 + j) * KS + tw, nn), m1 = vloadn(m + (4 + j) * KS + tw, nn);
            m2 = vloadn(m + (8 + j) * KS + tw, nn), m3 = vloadn(m + (12 + j) * KS + tw, nn);
          }
          s0[j] = vadd(vadd(m0, m1), m2);
          s1[j] = vsub(vsub(m1, m2), m3);
        }
        vstore(yt[0] + tw, vadd(vadd(vadd(s0[0], s0[1]), s0[2]), bv));
        vstore(yt[1] + tw, vadd(vsub(vsub(s0[1], s0[2]), s0[3]), bv));
        vstore(yt[2] + tw, vadd(vadd(vadd(s1[0], s1[1]), s1[2]), bv));
        vstore(yt[3] + tw, vadd(vsub(vsub(s1[1], s1[2]), s1[3]), bv));
      }
      float* yc = y + (n * OC + oc) * OH * OW;
      const int64_t half = OW / 2;
      for (int i = 0; i < 2; ++i) {
        const int64_t oh = 2 * th + i;
        if (oh >= OH) break;
        float* __restrict yr = yc + oh * OW;
        const float* __restrict ye = yt[2 * i];
        const float* __restrict yo = yt[2 * i + 1];
        for (int64_t tw = 0; tw < half; ++tw) {
          yr[2 * tw] = ye[tw];
          yr[2 * tw + 1] = yo[tw];
        }
        if (OW & 1) yr[OW - 1] = ye[half];
      }
    }
  }
}

int64_t wino_tmp_floats(int64_t, int64_t TW, int64_t) { return 8 * (TW + 16); }

const wino::Kernels kWinoKernels = {2, &wino_weight, &wino_input, &wino_output, &wino_tmp_floats};
