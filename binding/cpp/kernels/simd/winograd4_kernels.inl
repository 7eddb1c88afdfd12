// Winograd F(4×4, 3×3) transforms (see kernels/winograd.h), on the same per-ISA vector
// layer as simd/winograd_kernels.inl (plus vfma(a, b, c) = a·b + c and the gather / scatter
// helpers cols4 and interleave4), textually included after it. Interpolation points 0, ±1, ±2, ∞ (Lavin & Gray 2016, §4.2):
//   Bᵀ = [[4,0,−5,0,1,0],[0,−4,−4,1,1,0],[0,4,−4,−1,1,0],[0,−2,−1,2,1,0],[0,2,−1,−2,1,0],[0,4,0,−5,0,1]]
//   G  = [[¼,0,0],[−⅙,−⅙,−⅙],[−⅙,⅙,−⅙],[1/24,1/12,⅙],[1/24,−1/12,⅙],[0,0,1]]
//   Aᵀ = [[1,1,1,1,1,0],[0,1,−1,2,−2,0],[0,1,1,4,4,0],[0,1,−1,8,−8,1]]
// A 6×6 input patch gives 16 outputs for 36 products (2.25 per output, F(2×2) 4, direct 9).
// Unlike the F(2×2) kernels, which vectorize along one tile row, these first gather a chunk's
// patches (input) or leave its products (output) as 36 rows of T contiguous tiles, so a
// vector is full however few tiles a row has (a 28×28 map has 7 per row). Full vectors and
// the tail run the same operation sequence, so a value never depends on its lane.

namespace w4 {

// Floats of the chunk-wide rows (36 of them, or 16 for the outputs): T rounded up, plus
// slack for a tail vector.
inline int64_t row_stride(int64_t T) { return (T + 2 * W - 1) / W * W; }

// Bᵀ applied to six vectors (a column or a row of the patch).
inline void bt(const V d[6], V r[6]) {
  const V four = vset(4.f), mfour = vset(-4.f), mfive = vset(-5.f), two = vset(2.f);
  r[0] = vfma(four, d[0], vfma(mfive, d[2], d[4]));
  const V a = vfma(mfour, d[2], d[4]), b = vfma(mfour, d[1], d[3]);
  r[1] = vadd(a, b);
  r[2] = vsub(a, b);
  const V c = vsub(d[4], d[2]), e = vmul(two, vsub(d[3], d[1]));
  r[3] = vadd(c, e);
  r[4] = vsub(c, e);
  r[5] = vfma(four, d[1], vfma(mfive, d[3], d[5]));
}

// Aᵀ applied to six vectors.
inline void at(const V m[6], V y[4]) {
  const V s = vadd(m[1], m[2]), d = vsub(m[1], m[2]), s2 = vadd(m[3], m[4]), d2 = vsub(m[3], m[4]);
  y[0] = vadd(vadd(m[0], s), s2);
  y[1] = vfma(vset(2.f), d2, d);
  y[2] = vfma(vset(4.f), s2, s);
  y[3] = vadd(vfma(vset(8.f), d2, d), m[5]);
}

inline V load_or_tail(const float* p, int64_t n) { return n == W ? vload(p) : vloadn(p, n); }
inline void store_or_tail(float* p, V v, int64_t n) {
  if (n == W)
    vstore(p, v);
  else
    vstoren(p, v, n);
}

// Zero-padded copies of input rows: plane[(hh − hh0)·WP + k] = x[hh − pad][k − pad] for
// padded rows hh ∈ [hh0, hh1), zero outside the image, WP floats per row.
inline void pad_rows(const float* xc, int64_t H, int64_t Wd, int64_t pad, int64_t hh0, int64_t hh1, int64_t WP,
                     float* plane) {
  for (int64_t hh = hh0; hh < hh1; ++hh) {
    float* __restrict dst = plane + (hh - hh0) * WP;
    const int64_t h = hh - pad;
    if (h < 0 || h >= H) {
      std::memset(dst, 0, sizeof(float) * static_cast<size_t>(WP));
      continue;
    }
    for (int64_t k = 0; k < pad; ++k) dst[k] = 0.f;
    std::memcpy(dst + pad, xc + h * Wd, sizeof(float) * static_cast<size_t>(Wd));
    for (int64_t k = pad + Wd; k < WP; ++k) dst[k] = 0.f;
  }
}

// Floats per padded input row: the 4·TW + 2 columns the tiles read, plus slack for cols4's loads.
inline int64_t row_floats(int64_t TW, int64_t Wd) {
  const int64_t need = 4 * TW + 2 + 32;
  return ((need > Wd + 2 ? need : Wd + 2) + 15) / 16 * 16;
}

}  // namespace w4

// U = G g Gᵀ (36 matrices), W (oc, ic) pairs at a time.
void wino4_weight(const float* w, int64_t P, int64_t p0, int64_t p1, int64_t KS, float* U) {
  alignas(64) float g[9][W];
  const V quarter = vset(0.25f), msixth = vset(-1.f / 6.f), inv24 = vset(1.f / 24.f), two = vset(2.f),
          four = vset(4.f);
  // G applied to (a, b, c): six values.
  auto gcol = [&](V a, V b, V c, V u[6]) {
    const V ac = vadd(a, c), ac4 = vfma(four, c, a), b2 = vmul(two, b);
    u[0] = vmul(quarter, a);
    u[1] = vmul(msixth, vadd(ac, b));
    u[2] = vmul(msixth, vsub(ac, b));
    u[3] = vmul(inv24, vadd(ac4, b2));
    u[4] = vmul(inv24, vsub(ac4, b2));
    u[5] = c;
  };
  for (int64_t p = p0; p < p1; p += W) {
    const int64_t n = p1 - p < W ? p1 - p : W;
    for (int64_t l = 0; l < n; ++l)
      for (int r = 0; r < 9; ++r) g[r][l] = w[(p + l) * 9 + r];
    V t[6][3];
    for (int j = 0; j < 3; ++j) {  // t = G g, column j
      V u[6];
      gcol(vload(g[j]), vload(g[3 + j]), vload(g[6 + j]), u);
      for (int i = 0; i < 6; ++i) t[i][j] = u[i];
    }
    for (int i = 0; i < 6; ++i) {  // U = t Gᵀ, row i
      V u[6];
      gcol(t[i][0], t[i][1], t[i][2], u);
      for (int j = 0; j < 6; ++j) w4::store_or_tail(U + (6 * i + j) * KS + p, u[j], n);
    }
  }
}

// V = Bᵀ d B for the patches d at rows 4·th − pad + i, columns 4·tw − pad + j (zero outside).
// Per channel, the chunk's input rows are copied zero-padded (each once), their patches
// gathered as D[6i + j][t] (cols4 of the ISA layer: each padded row gives the six patch
// columns of its tiles), and the transform runs over t in full vectors.
void wino4_input(const float* x, int64_t C, int64_t H, int64_t Wd, int64_t pad, int64_t TH, int64_t TW, int64_t r0,
                 int64_t r1, int64_t c0, int64_t c1, int64_t T, int64_t KS, float* Vout, float* tmp) {
  const int64_t RS = w4::row_stride(T), WP = w4::row_floats(TW, Wd);
  float* D = tmp;
  float* plane = D + 36 * RS;  // (4·rows + 2)·WP floats
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t ra = r0; ra < r1;) {  // runs of tile rows [ra, rb) of one image
      const int64_t n = ra / TH, tha = ra % TH;
      const int64_t rb = (n + 1) * TH < r1 ? (n + 1) * TH : r1, thb = tha + (rb - ra);
      w4::pad_rows(x + (n * C + c) * H * Wd, H, Wd, pad, 4 * tha, 4 * thb + 2, WP, plane);
      for (int64_t th = tha; th < thb; ++th) {
        const int64_t t0 = (ra - r0 + th - tha) * TW;
        for (int i = 0; i < 6; ++i) cols4(plane + (4 * (th - tha) + i) * WP, TW, D + 6 * i * RS + t0, RS);
      }
      ra = rb;
    }
    float* v = Vout + c * T;
    for (int64_t t = 0; t < T; t += W) {
      const int64_t nn = T - t < W ? T - t : W;
      alignas(64) float a[36][W];  // Bᵀ d: a[6k + j] = row k of Bᵀ applied to patch column j
      for (int j = 0; j < 6; ++j) {
        V d[6], e[6];
        for (int i = 0; i < 6; ++i) d[i] = w4::load_or_tail(D + (6 * i + j) * RS + t, nn);
        w4::bt(d, e);
        for (int k = 0; k < 6; ++k) vstore(a[6 * k + j], e[k]);
      }
      for (int k = 0; k < 6; ++k) {  // (Bᵀ d) B: Bᵀ applied along each row
        V d[6], e[6];
        for (int j = 0; j < 6; ++j) d[j] = vload(a[6 * k + j]);
        w4::bt(d, e);
        for (int l = 0; l < 6; ++l) w4::store_or_tail(v + (6 * k + l) * KS + t, e[l], nn);
      }
    }
  }
}

// y = Aᵀ m A + bias over the chunk's tiles into Y[4i + j][t] (full vectors), then each tile
// row's four output rows are interleaved from the four column phases and cropped to OH × OW.
// tmp: 16·row_stride(T) floats.
void wino4_output(const float* M, int64_t OC, int64_t OH, int64_t OW, int64_t TH, int64_t TW, int64_t r0, int64_t r1,
                  int64_t o0, int64_t o1, int64_t T, int64_t KS, const float* bias, float* y, float* tmp) {
  const int64_t RS = w4::row_stride(T);
  float* Y = tmp;
  for (int64_t oc = o0; oc < o1; ++oc) {
    const V bv = vset(bias ? bias[oc] : 0.f);
    const float* m = M + oc * T;
    for (int64_t t = 0; t < T; t += W) {
      const int64_t nn = T - t < W ? T - t : W;
      alignas(64) float s[24][W];  // Aᵀ along each row k of m: s[4k + j]
      for (int k = 0; k < 6; ++k) {
        V mv[6], o[4];
        for (int l = 0; l < 6; ++l) mv[l] = w4::load_or_tail(m + (6 * k + l) * KS + t, nn);
        w4::at(mv, o);
        for (int j = 0; j < 4; ++j) vstore(s[4 * k + j], o[j]);
      }
      for (int j = 0; j < 4; ++j) {  // Aᵀ down each column j
        V mv[6], o[4];
        for (int k = 0; k < 6; ++k) mv[k] = vload(s[4 * k + j]);
        w4::at(mv, o);
        for (int i = 0; i < 4; ++i) vstore(Y + (4 * i + j) * RS + t, vadd(o[i], bv));
      }
    }
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / TH, th = r % TH, t0 = (r - r0) * TW;
      float* yc = y + (n * OC + oc) * OH * OW;
      for (int i = 0; i < 4; ++i) {
        const int64_t oh = 4 * th + i;
        if (oh >= OH) break;
        interleave4(Y + 4 * i * RS + t0, RS, OW, yc + oh * OW);
      }
    }
  }
}

// Scratch for wino4_input (D and the padded rows; T = rows·TW) and wino4_output (Y).
int64_t wino4_tmp_floats(int64_t T, int64_t TW, int64_t W_in) {
  return 36 * w4::row_stride(T) + (4 * (T / TW) + 2) * w4::row_floats(TW, W_in);
}

const wino::Kernels kWino4Kernels = {4, &wino4_weight, &wino4_input, &wino4_output, &wino4_tmp_floats};
