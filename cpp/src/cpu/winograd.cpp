// Conv2d and ConvTranspose2d in fp32 as Winograd convolutions: stride-2 layers (the DCGAN
// layers: 5x5 or 4x4 kernels, padding "same") as F(4x4, 3x3) of their phase images (about 2.8x
// fewer multiply-adds than the direct 5x5 kernel), 'same' stride-1 layers as F(4x4, 5x5) (5x5
// kernels: 6.25x fewer) or F(4x4, 3x3) (3x3: 4x fewer). Forward, backward-data and
// backward-weights, the matrix products on oneDNN's matmul. Which layers: use_winograd at the
// end.
//
// Phases. A stride-2 Conv2d reads input row 2*o + ky - lo for output row o. With r = ky - lo,
// that is row 2*(o + floor(r/2)) + (r mod 2): row o + floor(r/2) of the input's phase image of
// parity a = r mod 2 (the rows 2*i + a). So the layer is one stride-1 convolution with a 3x3
// window (offsets -1, 0, 1) from the four phase images of x (4 * Ci channels) to y, when every
// r is in [-2, 3] (5x5 with lo 1 or 2; 4x4 with lo 1) and the input is twice the output's size.
// A ConvTranspose2d writes output row 2*i + ky - lo: its output's phase a = (ky - lo) mod 2
// gets, at row t, input row t - floor((ky - lo)/2). So it is one stride-1 3x3 convolution from
// x to the four phase images of y (4 * Co channels). Window slots no tap reaches hold zeros.
//
// The stride-1 convolution ("engine": X (T tiles of A x A, K channels) -> Y (M x M tiles, N
// channels), weights g (N, K, R, R), A = M + R - 1: 6 for F(4x4, 3x3), 8 for F(4x4, 5x5)) in
// the Winograd domain, per slot xi of the A x A tile:
//   forward:          M[xi] = V[xi] U[xi],   V = B^T d B (input tiles), U = G g G^T,
//                     y = A^T M A;
//   backward-data:    dM = A dy A^T,  dV[xi] = dM[xi] U[xi]^T,  dx = sum over tiles B dV B^T;
//   backward-weights: dU[xi] = V[xi]^T dM[xi],  dg = G^T dU G.
// Each product is one batched oneDNN matmul over the A*A slots; the transforms are loops over
// channel vectors here.
// Overlapping tiles are summed in a gather with a fixed order, and every loop gives each output
// element to one thread, so results do not depend on the thread count. The phase images are
// never materialised: the transforms read and write the NHWC tensors of the layer through the
// phase mapping.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// DCGAN_CPU_WINO, read when a network is compiled: "auto" (unset: the layers use_winograd's
// rule takes), "all" (also the small sides that rule leaves to oneDNN, for tests and
// benchmarks) or "native" (oneDNN's own kernels everywhere).
std::string wino_setting() { return cpu_path_setting("DCGAN_CPU_WINO", {"auto", "all", "native"}); }

constexpr int kV = 16;  // channels per vector of the transforms

// Extra floats per row of the products' matrices when oneDNN 3.2 runs them on its gemm-based
// matmul (gemm:jit, where it has no brgemm matmul for the ISA: AVX2). With dense rows whose
// length is a power of two (K or N = 128 .. 1024) that kernel ran dcgan64's products at half
// speed: 36 x (256x512 . 512x1024) took 104 ms, with rows 16 floats longer 54 ms, on Zen 4
// held to AVX2 (bench/RESULTS.md, issue 13, eighth pass). oneDNN's brgemm matmul (AVX-512)
// keeps dense rows: there padded rows would move the products to gemm:jit, no faster overall.
constexpr int64_t kRowPad = 16;

// ------------------------------------------------------------------ the transforms
// On tiles of vectors of kV channels, `float[R*R][kV]` row-major. Each 1-D transform reads
// entries i[0], i[is], i[2*is], ... and writes o[0], o[os], ...; the 2-D transforms apply it
// down the columns, then along the rows. First F(4x4, 3x3) on 6x6 tiles, at the points 0,
// +-1, +-2 and infinity.
using Vec = float[kV];

// B^T (6x6): input tile d -> V.
inline void bt6(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float d0 = i[0][v], d1 = i[is][v], d2 = i[2 * is][v], d3 = i[3 * is][v],
                d4 = i[4 * is][v], d5 = i[5 * is][v];
    o[0][v] = 4.f * d0 - 5.f * d2 + d4;
    o[os][v] = -4.f * (d1 + d2) + d3 + d4;
    o[2 * os][v] = 4.f * (d1 - d2) - d3 + d4;
    o[3 * os][v] = -2.f * (d1 - d3) - d2 + d4;
    o[4 * os][v] = 2.f * (d1 - d3) - d2 + d4;
    o[5 * os][v] = 4.f * d1 - 5.f * d3 + d5;
  }
}
// B (6x6): the adjoint, V-gradient -> input-tile gradient.
inline void b6(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float v0 = i[0][v], v1 = i[is][v], v2 = i[2 * is][v], v3 = i[3 * is][v],
                v4 = i[4 * is][v], v5 = i[5 * is][v];
    o[0][v] = 4.f * v0;
    o[os][v] = 4.f * (v2 - v1 + v5) + 2.f * (v4 - v3);
    o[2 * os][v] = -5.f * v0 - 4.f * (v1 + v2) - v3 - v4;
    o[3 * os][v] = v1 - v2 + 2.f * (v3 - v4) - 5.f * v5;
    o[4 * os][v] = v0 + v1 + v2 + v3 + v4;
    o[5 * os][v] = v5;
  }
}
// A^T (4x6): M -> output tile.
inline void at4(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float p12 = i[is][v] + i[2 * is][v], d12 = i[is][v] - i[2 * is][v];
    const float p34 = i[3 * is][v] + i[4 * is][v], d34 = i[3 * is][v] - i[4 * is][v];
    o[0][v] = i[0][v] + p12 + p34;
    o[os][v] = d12 + 2.f * d34;
    o[2 * os][v] = p12 + 4.f * p34;
    o[3 * os][v] = d12 + 8.f * d34 + i[5 * is][v];
  }
}
// A (6x4): the adjoint, output-tile gradient -> M-gradient.
inline void a6(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float y0 = i[0][v], y1 = i[is][v], y2 = i[2 * is][v], y3 = i[3 * is][v];
    const float e = y0 + y2, f = y1 + y3, g = y0 + 4.f * y2, h = 2.f * y1 + 8.f * y3;
    o[0][v] = y0;
    o[os][v] = e + f;
    o[2 * os][v] = e - f;
    o[3 * os][v] = g + h;
    o[4 * os][v] = g - h;
    o[5 * os][v] = y3;
  }
}
// G (6x3): 3 weights -> 6.
inline void g6(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float g0 = i[0][v], g1 = i[is][v], g2 = i[2 * is][v], s = g0 + g2;
    o[0][v] = 0.25f * g0;
    o[os][v] = -(s + g1) / 6.f;
    o[2 * os][v] = -(s - g1) / 6.f;
    o[3 * os][v] = g0 / 24.f + g1 / 12.f + g2 / 6.f;
    o[4 * os][v] = g0 / 24.f - g1 / 12.f + g2 / 6.f;
    o[5 * os][v] = g2;
  }
}
// G^T (3x6): the adjoint.
inline void gt3(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float u0 = i[0][v], u1 = i[is][v], u2 = i[2 * is][v], u3 = i[3 * is][v],
                u4 = i[4 * is][v], u5 = i[5 * is][v];
    o[0][v] = 0.25f * u0 - (u1 + u2) / 6.f + (u3 + u4) / 24.f;
    o[os][v] = (u2 - u1) / 6.f + (u3 - u4) / 12.f;
    o[2 * os][v] = (u3 + u4 - u1 - u2) / 6.f + u5;
  }
}

// F(4x4, 5x5) on 8x8 tiles, at the points 0, +-1, +-2, +-1/2 and infinity: B^T (8x8), B,
// G (8x5), G^T (5x8), A^T (4x8), A (8x4). 4 multiplies per output instead of 25.
inline void bt8(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float d0 = i[0][v], d1 = i[is][v], d2 = i[2 * is][v], d3 = i[3 * is][v],
                d4 = i[4 * is][v], d5 = i[5 * is][v], d6 = i[6 * is][v], d7 = i[7 * is][v];
    o[0][v] = 5.25f * (d2 - d4) - d0 + d6;
    const float s1 = d2 - 4.25f * d4 + d6, t1 = d1 - 4.25f * d3 + d5;
    o[os][v] = s1 + t1;
    o[2 * os][v] = s1 - t1;
    const float s3 = 0.25f * d2 - 1.25f * d4 + d6, t3 = 0.5f * d1 - 2.5f * d3 + 2.f * d5;
    o[3 * os][v] = s3 + t3;
    o[4 * os][v] = s3 - t3;
    const float s5 = 4.f * d2 - 5.f * d4 + d6, t5 = 2.f * d1 - 2.5f * d3 + 0.5f * d5;
    o[5 * os][v] = s5 + t5;
    o[6 * os][v] = s5 - t5;
    o[7 * os][v] = 5.25f * (d3 - d5) - d1 + d7;
  }
}
inline void b8(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float v0 = i[0][v], v7 = i[7 * is][v];
    const float s1 = i[is][v] + i[2 * is][v], d1 = i[is][v] - i[2 * is][v];
    const float s3 = i[3 * is][v] + i[4 * is][v], d3 = i[3 * is][v] - i[4 * is][v];
    const float s5 = i[5 * is][v] + i[6 * is][v], d5 = i[5 * is][v] - i[6 * is][v];
    o[0][v] = -v0;
    o[os][v] = d1 + 0.5f * d3 + 2.f * d5 - v7;
    o[2 * os][v] = 5.25f * v0 + s1 + 0.25f * s3 + 4.f * s5;
    o[3 * os][v] = -4.25f * d1 - 2.5f * (d3 + d5) + 5.25f * v7;
    o[4 * os][v] = -5.25f * v0 - 4.25f * s1 - 1.25f * s3 - 5.f * s5;
    o[5 * os][v] = d1 + 2.f * d3 + 0.5f * d5 - 5.25f * v7;
    o[6 * os][v] = v0 + s1 + s3 + s5;
    o[7 * os][v] = v7;
  }
}
inline void g8r5(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float g0 = i[0][v], g1 = i[is][v], g2 = i[2 * is][v], g3 = i[3 * is][v],
                g4 = i[4 * is][v];
    const float e = g0 + g2 + g4, f = g1 + g3;
    const float p = g0 + 4.f * g2 + 16.f * g4, q = 2.f * g1 + 8.f * g3;
    const float P = 32.f * g0 + 8.f * g2 + 2.f * g4, Q = 16.f * g1 + 4.f * g3;
    o[0][v] = -g0;
    o[os][v] = (e + f) * (-2.f / 9.f);
    o[2 * os][v] = (e - f) * (-2.f / 9.f);
    o[3 * os][v] = (p + q) / 90.f;
    o[4 * os][v] = (p - q) / 90.f;
    o[5 * os][v] = (P + Q) / 45.f;
    o[6 * os][v] = (P - Q) / 45.f;
    o[7 * os][v] = g4;
  }
}
inline void gt8r5(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float s1 = i[is][v] + i[2 * is][v], d1 = i[is][v] - i[2 * is][v];
    const float s3 = i[3 * is][v] + i[4 * is][v], d3 = i[3 * is][v] - i[4 * is][v];
    const float s5 = i[5 * is][v] + i[6 * is][v], d5 = i[5 * is][v] - i[6 * is][v];
    const float a = s1 * (-2.f / 9.f), b = d1 * (-2.f / 9.f);
    o[0][v] = a - i[0][v] + s3 / 90.f + s5 * (32.f / 45.f);
    o[os][v] = b + d3 / 45.f + d5 * (16.f / 45.f);
    o[2 * os][v] = a + (s3 + 4.f * s5) * (2.f / 45.f);
    o[3 * os][v] = b + (d3 + d5) * (4.f / 45.f);
    o[4 * os][v] = a + (4.f * s3 + s5) * (2.f / 45.f) + i[7 * is][v];
  }
}
inline void at4r8(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float s1 = i[is][v] + i[2 * is][v], d1 = i[is][v] - i[2 * is][v];
    const float s3 = i[3 * is][v] + i[4 * is][v], d3 = i[3 * is][v] - i[4 * is][v];
    const float s5 = i[5 * is][v] + i[6 * is][v], d5 = i[5 * is][v] - i[6 * is][v];
    o[0][v] = i[0][v] + s1 + s3 + s5;
    o[os][v] = d1 + 2.f * d3 + 0.5f * d5;
    o[2 * os][v] = s1 + 4.f * s3 + 0.25f * s5;
    o[3 * os][v] = d1 + 8.f * d3 + 0.125f * d5 + i[7 * is][v];
  }
}
inline void a8r4(const Vec* i, int is, Vec* o, int os) {
#pragma omp simd
  for (int v = 0; v < kV; ++v) {
    const float y0 = i[0][v], y1 = i[is][v], y2 = i[2 * is][v], y3 = i[3 * is][v];
    const float e1 = y0 + y2, f1 = y1 + y3, e2 = y0 + 4.f * y2, f2 = 2.f * y1 + 8.f * y3;
    const float e3 = y0 + 0.25f * y2, f3 = 0.5f * y1 + 0.125f * y3;
    o[0][v] = y0;
    o[os][v] = e1 + f1;
    o[2 * os][v] = e1 - f1;
    o[3 * os][v] = e2 + f2;
    o[4 * os][v] = e2 - f2;
    o[5 * os][v] = e3 + f3;
    o[6 * os][v] = e3 - f3;
    o[7 * os][v] = y3;
  }
}

// The variants F(M x M, R x R), on (M + R - 1) x (M + R - 1) tiles: input transform bt and
// its adjoint b, weight transform g and its adjoint gt, output transform at and its adjoint a.
using Fn = void (*)(const Vec*, int, Vec*, int);
template <int M, int R>
struct Variant;
template <>
struct Variant<4, 3> {
  static constexpr Fn bt = bt6, b = b6, g = g6, gt = gt3, at = at4, a = a6;
};
template <>
struct Variant<4, 5> {
  static constexpr Fn bt = bt8, b = b8, g = g8r5, gt = gt8r5, at = at4r8, a = a8r4;
};

// 2-D: `in` (R x R) -> `out` (S x S) through `tmp` (S x R): f down each column of `in`, then
// along each row of `tmp`.
template <int R, int S, Fn F>
inline void transform2d(const Vec* in, Vec* tmp, Vec* out) {
  for (int c = 0; c < R; ++c) F(in + c, R, tmp + c, R);
  for (int s = 0; s < S; ++s) F(tmp + s * R, 1, out + s * S, 1);
}

// kV floats (the first n of them from src, zeros after) into dst, and back. Whole vectors are
// copied with memcpy: GCC 12 turned the element loop into scalar loads and inserts (perf on
// mnist, bench/RESULTS.md, issue 13, tenth pass); memcpy compiles to vector moves.
inline void load(Vec& dst, const float* src, int n) {
  if (n == kV) {
    std::memcpy(dst, src, sizeof(Vec));
  } else {
    for (int v = 0; v < kV; ++v) dst[v] = v < n ? src[v] : 0.f;
  }
}
inline void store(float* dst, const Vec& src, int n) {
  if (n == kV) {
    std::memcpy(dst, src, sizeof(Vec));
  } else {
    for (int v = 0; v < n; ++v) dst[v] = src[v];
  }
}
inline void zero(Vec& dst) {
  for (int v = 0; v < kV; ++v) dst[v] = 0.f;
}

// One operand of the engine: an NHWC f32 tensor (N, m*h, m*w, cp) seen as h x w positions of
// P phase images (m = 2, P = 4; phase p = 2*a + b is the rows 2i+a, columns 2j+b) or as itself
// (m = 1, P = 1); engine channel p*cp + c.
struct View {
  int64_t h = 0, w = 0, cp = 0;
  int m = 1, P = 1;
  // Address of channel 0 of position (i, j) of phase p of image n in a tensor at `base`.
  float* at(float* base, int64_t n, int64_t i, int64_t j, int p) const {
    const int64_t H = m * h, W = m * w;
    return base + ((n * H + m * i + p / 2 * (m - 1)) * W + m * j + p % 2 * (m - 1)) * cp;
  }
  int64_t channels() const { return P * cp; }
};

template <int M, int R>
class Winograd : public WinoConv {
  using F = Variant<M, R>;
  static constexpr int A = M + R - 1, AA = A * A, PAD = (R - 1) / 2;

 public:
  Winograd(Ctx& c, const ResolvedLayer& L, int64_t batch, const memory& x, const memory& y,
           const memory& dy, const memory& dx, const memory& w_canon, const float* bias,
           const ResolvedLayer* act, bool one_weight_pass)
      : c_(c),
        bias_(bias),
        x_(x),
        y_(y),
        dy_(dy),
        dx_(dx),
        w_canon_(w_canon),
        du_in_u_(one_weight_pass) {
    const LayerSpec& s = L.spec;
    conv_ = s.kind == LayerKind::Conv2d;
    phases_ = s.stride == 2;
    k_ = s.kernel, lo_h_ = L.pad_h.lo, lo_w_ = L.pad_w.lo;
    set_up_taps();
    ci_ = L.in[0], co_ = s.out, n_ = batch;
    const Shape& small = conv_ ? L.out : L.in;
    const int64_t h = small[1], w = small[2];
    // The engine's input and output as views of x and y: the big side's phase images at
    // stride 2, the tensors themselves at stride 1.
    const bool px = phases_ && conv_, py = phases_ && !conv_;
    ex_ = View{h, w, ci_, px ? 2 : 1, px ? 4 : 1};
    ey_ = View{h, w, co_, py ? 2 : 1, py ? 4 : 1};
    K_ = ex_.channels(), N_ = ey_.channels();
    th_ = (h + M - 1) / M, tw_ = (w + M - 1) / M, T_ = n_ * th_ * tw_;
    // The products, on dense rows; or on rows kRowPad floats longer where oneDNN runs them on
    // its gemm-based matmul (see kRowPad).
    if (plan_products(c, 0)) plan_products(c, kRowPad);
    // Work buffers (shared with the other layers' passes): V (AA, T, K), M (AA, T, N) and, in a
    // network with two weight passes per update (D), dU (AA, K, N). U (AA, K, N) is this
    // layer's (it lives from one weight update to the next); with one weight pass per update
    // (G), dU is computed into U's buffer (dcgan64's G 4->8: 302 MB each), as U is rebuilt after
    // the update anyway. In D that would cost a rebuild per weight pass (cifar10's D 8->4: 13 ms).
    const int64_t v_sz = AA * T_ * ldk_, m_sz = AA * T_ * ldn_;
    const int64_t du_sz = du_in_u_ ? 0 : AA * K_ * ldn_;
    work_ = c.work(md_t({v_sz + m_sz + du_sz}, dt::f32, tag::a));
    v_off_ = 0, m_off_ = v_sz, du_off_ = v_sz + m_sz;
    u_ = memory(md_u_, c.eng);
    if (act) {
      act_ = fused_act_forward(c, act->spec, y.get_desc());
      has_act_ = true;
    }
  }

  void forward(dnnl::stream& s, uint64_t weights_version) override {
    refresh_weights(weights_version);
    float* work = base();
    input_transform(ptr(x_), work + v_off_);
    s.wait();
    fwd_.run(s, {{DNNL_ARG_SRC, mem(md_v_, work + v_off_)},
                 {DNNL_ARG_WEIGHTS, u_},
                 {DNNL_ARG_DST, mem(md_m_, work + m_off_)}});
    s.wait();
    output_transform(work + m_off_, ptr(y_));
    if (has_act_) act_.run(s, {{DNNL_ARG_SRC, y_}, {DNNL_ARG_DST, y_}});
    s.wait();
  }

  void backward(dnnl::stream& s, uint64_t weights_version, bool data, const memory* dw_canon,
                float* db) override {
    float* work = base();
    float* dm = work + m_off_;
    output_adjoint(ptr(dy_), dm);
    if (data) {
      refresh_weights(weights_version);
      s.wait();
      bwd_d_.run(s, {{DNNL_ARG_SRC, mem(md_m_, dm)},
                     {DNNL_ARG_WEIGHTS, mem(md_ut_, ptr(u_))},
                     {DNNL_ARG_DST, mem(md_v_, work + v_off_)}});
      s.wait();
      input_adjoint(work + v_off_, ptr(dx_));
    }
    if (dw_canon) {
      input_transform(ptr(x_), work + v_off_);
      s.wait();
      float* du = du_in_u_ ? ptr(u_) : work + du_off_;
      if (du_in_u_) u_version_ = ~0ull;  // U is rebuilt when it is next needed
      bwd_w_.run(s, {{DNNL_ARG_SRC, mem(md_vt_, work + v_off_)},
                     {DNNL_ARG_WEIGHTS, mem(md_m_, dm)},
                     {DNNL_ARG_DST, mem(md_u_, du)}});
      s.wait();
      weight_adjoint(du, static_cast<float*>(dw_canon->get_data_handle()));
      if (db) bias_grad(db);
    }
  }

 private:
  static float* ptr(const memory& m) { return static_cast<float*>(m.get_data_handle()); }
  memory mem(const md_t& d, float* p) const { return memory(d, c_.eng, p); }
  float* base() const { return static_cast<float*>(work_->get_data_handle()); }

  // The three products with V's rows ldk_ = K_ + pad and M's, U's and dU's rows ldn_ = N_ + pad
  // floats apart. Returns whether oneDNN chose its gemm-based matmul for the forward.
  bool plan_products(Ctx& c, int64_t pad) {
    using dnnl::matmul;
    constexpr int64_t a = AA;
    ldk_ = K_ + pad, ldn_ = N_ + pad;
    md_v_ = md_t({a, T_, K_}, dt::f32, memory::dims{T_ * ldk_, ldk_, 1});
    md_m_ = md_t({a, T_, N_}, dt::f32, memory::dims{T_ * ldn_, ldn_, 1});
    md_u_ = md_t({a, K_, N_}, dt::f32, memory::dims{K_ * ldn_, ldn_, 1});
    md_ut_ = md_t({a, N_, K_}, dt::f32, memory::dims{K_ * ldn_, 1, ldn_});
    md_vt_ = md_t({a, K_, T_}, dt::f32, memory::dims{T_ * ldk_, 1, ldk_});
    const matmul::primitive_desc fwd(c.eng, md_v_, md_u_, md_m_, c.attr());
    fwd_ = Prim(c, fwd);
    bwd_d_ = Prim(c, matmul::primitive_desc(c.eng, md_m_, md_ut_, md_v_, c.attr()));
    bwd_w_ = Prim(c, matmul::primitive_desc(c.eng, md_vt_, md_m_, md_u_, c.attr()));
    return std::string(fwd.impl_info_str()).rfind("gemm", 0) == 0;
  }

  // ---------------------------------------------------------------- weights
  // Engine weight (n, k) at window slot (ey, ex): its index in the canonical (PyTorch-layout)
  // weights, or -1 for a slot no tap reaches. Conv2d: n = o, k = p*Ci + i, tap
  // ky = 2*(ey-1) + a + lo, W (out, in, k, k); ConvTranspose2d: n = p*Co + o, k = i, tap
  // ky = lo + a - 2*(ey-1), W (in, out, k, k); phase p = 2a + b.
  // At stride 1 (P = 1, window offsets e - PAD): Conv2d's tap ky = ey - PAD + lo,
  // ConvTranspose2d's ky = lo + PAD - ey.
  // The index is base(n, k) + tap_[p][ey*R + ex]: base is where the k x k kernel of (o, i)
  // starts, tap_ (set up once) the tap's offset in it or -1. Channel n's phase and base for a
  // fixed k come from engine_weight.
  void set_up_taps() {
    for (int p = 0; p < 4; ++p)
      for (int e = 0; e < R * R; ++e) {
        const int64_t a = p / 2, b = p % 2, f = phases_ ? 2 : 1;  // f: window offset -> tap
        const int64_t ey = e / R, ex = e % R;
        const int64_t ky = conv_ ? f * (ey - PAD) + a + lo_h_ : lo_h_ + a - f * (ey - PAD);
        const int64_t kx = conv_ ? f * (ex - PAD) + b + lo_w_ : lo_w_ + b - f * (ex - PAD);
        const bool in = ky >= 0 && ky < k_ && kx >= 0 && kx < k_;
        tap_[p][e] = in ? ky * k_ + kx : -1;
      }
  }
  // The tap table row (phase) and the kernel's start in the canonical weights of engine weight
  // (n, k).
  void engine_weight(int64_t n, int64_t k, const int64_t*& taps, int64_t& base) const {
    const int64_t p = !phases_ ? 0 : conv_ ? k / ci_ : n / co_;
    const int64_t o = conv_ ? n : n % co_, i = conv_ ? k % ci_ : k;
    taps = tap_[p];
    base = (conv_ ? o * ci_ + i : i * co_ + o) * k_ * k_;
  }

  void refresh_weights(uint64_t version) {
    if (version == u_version_) return;
    u_version_ = version;
    const float* w = ptr(w_canon_);
    float* u = ptr(u_);
    const int64_t K = K_, N = N_, ld = ldn_;
    // U[xi][k][n] = (G g G^T)[xi], vectors over n.
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < K; ++k) {
      alignas(64) Vec g[R * R], tmp[A * R], out[AA];
      for (int64_t n0 = 0; n0 < N; n0 += kV) {
        const int nv = static_cast<int>(std::min<int64_t>(kV, N - n0));
        for (int v = 0; v < kV; ++v) {
          const int64_t* taps = nullptr;
          int64_t base = 0;
          if (v < nv) engine_weight(n0 + v, k, taps, base);
          for (int e = 0; e < R * R; ++e) {
            const int64_t t = v < nv ? taps[e] : -1;
            g[e][v] = t < 0 ? 0.f : w[base + t];
          }
        }
        transform2d<R, A, F::g>(g, tmp, out);
        for (int xi = 0; xi < AA; ++xi) store(u + (xi * K + k) * ld + n0, out[xi], nv);
      }
    }
  }

  // dW (canonical) from dU: dg = G^T dU G, each engine weight to its tap (padding slots dropped).
  void weight_adjoint(const float* du, float* dw) const {
    const int64_t K = K_, N = N_, ld = ldn_;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < K; ++k) {
      alignas(64) Vec in[AA], tmp[A * R], g[R * R];
      for (int64_t n0 = 0; n0 < N; n0 += kV) {
        const int nv = static_cast<int>(std::min<int64_t>(kV, N - n0));
        for (int xi = 0; xi < AA; ++xi) load(in[xi], du + (xi * K + k) * ld + n0, nv);
        transform2d<A, R, F::gt>(in, tmp, g);
        for (int v = 0; v < nv; ++v) {
          const int64_t* taps = nullptr;
          int64_t base = 0;
          engine_weight(n0 + v, k, taps, base);
          for (int e = 0; e < R * R; ++e)
            if (taps[e] >= 0) dw[base + taps[e]] = g[e][v];
        }
      }
    }
  }

  // ---------------------------------------------------------------- activations
  // V[xi][t][k] = (B^T d B)[xi] for the A x A input tiles d (rows M*ti-PAD ..), zero outside.
  void input_transform(float* x, float* V) const {
    const View X = ex_;
    const int64_t T = T_, ld = ldk_;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t n = t / (th_ * tw_), ti = t / tw_ % th_, tj = t % tw_;
      alignas(64) Vec d[AA], tmp[AA], out[AA];
      for (int p = 0; p < X.P; ++p)
        for (int64_t c0 = 0; c0 < X.cp; c0 += kV) {
          const int nv = static_cast<int>(std::min<int64_t>(kV, X.cp - c0));
          for (int r = 0; r < A; ++r)
            for (int q = 0; q < A; ++q) {
              const int64_t i = M * ti - PAD + r, j = M * tj - PAD + q;
              if (i < 0 || i >= X.h || j < 0 || j >= X.w)
                zero(d[r * A + q]);
              else
                load(d[r * A + q], X.at(x, n, i, j, p) + c0, nv);
            }
          transform2d<A, A, F::bt>(d, tmp, out);
          const int64_t k0 = p * X.cp + c0;
          for (int xi = 0; xi < AA; ++xi) store(V + (xi * T + t) * ld + k0, out[xi], nv);
        }
    }
  }

  // y (M x M output tiles, inside the image) = A^T Mw A, plus the bias.
  void output_transform(const float* Mw, float* y) const {
    const View Y = ey_;
    const int64_t T = T_, ld = ldn_;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t n = t / (th_ * tw_), ti = t / tw_ % th_, tj = t % tw_;
      alignas(64) Vec m[AA], tmp[A * M], out[M * M];
      for (int p = 0; p < Y.P; ++p)
        for (int64_t c0 = 0; c0 < Y.cp; c0 += kV) {
          const int nv = static_cast<int>(std::min<int64_t>(kV, Y.cp - c0));
          const int64_t n0 = p * Y.cp + c0;
          for (int xi = 0; xi < AA; ++xi) load(m[xi], Mw + (xi * T + t) * ld + n0, nv);
          transform2d<A, M, F::at>(m, tmp, out);
          for (int r = 0; r < M; ++r)
            for (int q = 0; q < M; ++q) {
              const int64_t i = M * ti + r, j = M * tj + q;
              if (i >= Y.h || j >= Y.w) continue;
              float* o = Y.at(y, n, i, j, p) + c0;
              const float* src = out[r * M + q];
              if (bias_) {
                for (int v = 0; v < nv; ++v) o[v] = src[v] + bias_[c0 + v];
              } else {
                store(o, out[r * M + q], nv);
              }
            }
        }
    }
  }

  // dM[xi][t][n] = (A dy A^T)[xi] for the M x M output-gradient tiles (zero outside).
  void output_adjoint(float* dy, float* dM) const {
    const View Y = ey_;
    const int64_t T = T_, ld = ldn_;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t n = t / (th_ * tw_), ti = t / tw_ % th_, tj = t % tw_;
      alignas(64) Vec d[M * M], tmp[A * M], out[AA];
      for (int p = 0; p < Y.P; ++p)
        for (int64_t c0 = 0; c0 < Y.cp; c0 += kV) {
          const int nv = static_cast<int>(std::min<int64_t>(kV, Y.cp - c0));
          for (int r = 0; r < M; ++r)
            for (int q = 0; q < M; ++q) {
              const int64_t i = M * ti + r, j = M * tj + q;
              if (i >= Y.h || j >= Y.w)
                zero(d[r * M + q]);
              else
                load(d[r * M + q], Y.at(dy, n, i, j, p) + c0, nv);
            }
          transform2d<M, A, F::a>(d, tmp, out);
          const int64_t n0 = p * Y.cp + c0;
          for (int xi = 0; xi < AA; ++xi) store(dM + (xi * T + t) * ld + n0, out[xi], nv);
        }
    }
  }

  // dx = sum over the tiles covering each position of (B dV B^T): first each tile's A x A
  // gradient, in place in dV (slot xi becomes tile position xi), then a gather per position
  // over its tiles (up to 2 per axis) in ascending order.
  void input_adjoint(float* dV, float* dx) const {
    const View X = ex_;
    const int64_t T = T_, K = K_, ld = ldk_;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      alignas(64) Vec v[AA], tmp[AA], out[AA];
      for (int64_t k0 = 0; k0 < K; k0 += kV) {
        const int nv = static_cast<int>(std::min<int64_t>(kV, K - k0));
        for (int xi = 0; xi < AA; ++xi) load(v[xi], dV + (xi * T + t) * ld + k0, nv);
        transform2d<A, A, F::b>(v, tmp, out);
        for (int xi = 0; xi < AA; ++xi) store(dV + (xi * T + t) * ld + k0, out[xi], nv);
      }
    }
    const int64_t rows = n_ * X.h;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t n = row / X.h, i = row % X.h;
      // Tiles ti with M*ti - PAD <= i <= M*ti - PAD + A - 1, ascending.
      const int64_t ti_lo = first_tile(i), ti_hi = std::min(th_ - 1, (i + PAD) / M);
      for (int64_t j = 0; j < X.w; ++j) {
        const int64_t tj_lo = first_tile(j), tj_hi = std::min(tw_ - 1, (j + PAD) / M);
        for (int p = 0; p < X.P; ++p) {
          float* o = X.at(dx, n, i, j, p);
          const int64_t k0 = p * X.cp;
          std::fill_n(o, X.cp, 0.f);
          for (int64_t ti = ti_lo; ti <= ti_hi; ++ti)
            for (int64_t tj = tj_lo; tj <= tj_hi; ++tj) {
              const int64_t t = (n * th_ + ti) * tw_ + tj;
              const int64_t xi = (i + PAD - M * ti) * A + (j + PAD - M * tj);
              const float* src = dV + (xi * T + t) * ld + k0;
#pragma omp simd
              for (int64_t c = 0; c < X.cp; ++c) o[c] += src[c];
            }
        }
      }
    }
  }

  // The first tile whose A input rows reach row i: ceil((i + PAD - A + 1) / M), at least 0.
  static int64_t first_tile(int64_t i) {
    const int64_t d = i + PAD - A + 1;
    return d <= 0 ? 0 : (d + M - 1) / M;
  }

  // db[o] = sum of dy over images and positions, in order, per channel.
  void bias_grad(float* db) const {
    const float* dy = ptr(dy_);
    const int64_t positions = n_ * ey_.h * ey_.w * ey_.m * ey_.m, C = co_;
    std::fill_n(db, C, 0.f);
    for (int64_t r = 0; r < positions; ++r)
      for (int64_t c = 0; c < C; ++c) db[c] += dy[r * C + c];
  }

  Ctx& c_;
  const float* bias_;
  memory x_, y_, dy_, dx_, w_canon_, u_;
  std::shared_ptr<memory> work_;
  bool conv_ = true, phases_ = true;
  int64_t k_ = 0, lo_h_ = 0, lo_w_ = 0, ci_ = 0, co_ = 0, n_ = 0;
  View ex_, ey_;
  int64_t K_ = 0, N_ = 0, th_ = 0, tw_ = 0, T_ = 0, ldk_ = 0, ldn_ = 0;
  int64_t v_off_ = 0, m_off_ = 0, du_off_ = 0;
  bool du_in_u_ = false;  // dU computed into U's buffer (one weight pass per update)
  md_t md_v_, md_m_, md_u_, md_ut_, md_vt_;
  Prim fwd_, bwd_d_, bwd_w_, act_;
  bool has_act_ = false;
  uint64_t u_version_ = ~0ull;
  int64_t tap_[4][R * R] = {};  // see set_up_taps
};

// Whether the stride-2 layer's taps all land in the 3x3 window of its phase images: every
// r = k - lo in [-2, 3] on both axes, for k in [0, kernel).
bool fits_window(int64_t kernel, int64_t lo) { return lo >= 0 && lo <= 2 && kernel - 1 - lo <= 3; }

// A layer that use_winograd accepts runs as F(4x4, 5x5) when it is a 5x5 kernel at stride 1,
// as F(4x4, 3x3) otherwise (stride 2, or a 3x3 kernel at stride 1).
bool five_by_five(const LayerSpec& s) { return s.stride == 1 && s.kernel == 5; }

}  // namespace

bool use_winograd(bool bf16, const ResolvedLayer& L) {
  const LayerSpec& s = L.spec;
  if (s.kind != LayerKind::Conv2d && s.kind != LayerKind::ConvTranspose2d) return false;
  const std::string mode = wino_setting();
  if (bf16 || mode == "native") return false;
  const bool any_side = mode == "all";
  const bool conv = s.kind == LayerKind::Conv2d;
  const Shape& small = conv ? L.out : L.in;
  const Shape& big = conv ? L.in : L.out;
  if (s.stride == 2) {
    // Twice the size, with every tap in the phase images' 3x3 window.
    if (big[1] != 2 * small[1] || big[2] != 2 * small[2]) return false;
    if (!fits_window(s.kernel, L.pad_h.lo) || !fits_window(s.kernel, L.pad_w.lo)) return false;
  } else if (s.stride == 1) {
    // 'same' 3x3 or 5x5: the window centred on the output position.
    const int64_t pad = (s.kernel - 1) / 2;
    if ((s.kernel != 3 && s.kernel != 5) || big[1] != small[1] || big[2] != small[2]) return false;
    if (L.pad_h.lo != pad || L.pad_w.lo != pad) return false;
  } else {
    return false;
  }
  const int64_t k = s.stride == 2 && conv ? 4 * L.in[0] : L.in[0];
  const int64_t n = s.stride == 2 && !conv ? 4 * s.out : s.out;
  // F(4x4, 5x5) (bench/RESULTS.md, issue 13, seventh pass): 1.0-3.7x per pass with 40-256
  // channels and small sides of 4x4 to 32x32, on AVX-512 and AVX2; 32 channels ran
  // 0.82-1.08x. Its transforms move 64/16 floats per input element, its transformed weights
  // are 64/25 of the weights.
  if (five_by_five(s))
    return (any_side || (small[1] >= 4 && small[2] >= 4)) && std::min(k, n) >= 64;
  // F(4x4, 3x3): at least 128 channels in the products (K = the engine's input channels, N =
  // its output channels, phases included) to outweigh the transforms, which move 36 floats per
  // tile and channel (at 64, a 3x3 stride-1 layer ran 0.92x). And small sides the 4x4 tiles
  // cover without much padding (bench/RESULTS.md, issue 13, sixth and ninth passes; native /
  // Winograd per pass, batch 64, Zen 4):
  // - 8 and more: 1.1-2.5x.
  // - 4 (one tile per image: cifar10's D 8->4, dcgan64's G 4->8 and D 8->4): 1.2-2.6x with 256
  //   channels or more on AVX2 and AVX-512 alike (but G 4->8's backward-weights alone 0.74x on
  //   AVX-512), about even with 64-128; whole steps 1.07-1.21x faster although G 4->8's
  //   transformed weights are 5.8x its weights, rebuilt every update.
  // - 7 (mnist: 8x8 tiles, a quarter of them padding): 1.0-1.7x on AVX2, 0.77-1.04x on AVX-512
  //   (its direct kernels are faster); whole mnist steps 1.16x faster on AVX2, 0.96x on AVX-512.
  // - 5 and 6: 0.45-1.06x on both.
  const auto side_ok = [any_side](int64_t a) {
    return any_side || a >= 8 || a == 4 || (a == 7 && onednn_avx2_only());
  };
  return side_ok(small[1]) && side_ok(small[2]) && std::min(k, n) >= 128;
}

bool use_winograd(const Ctx& c, const ResolvedLayer& L) {
  return use_winograd(c.act == dt::bf16, L);
}

std::unique_ptr<WinoConv> make_winograd(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                        const memory& x, const memory& y, const memory& dy,
                                        const memory& dx, const memory& w_canon, const float* bias,
                                        const ResolvedLayer* act, bool one_weight_pass) {
  if (five_by_five(L.spec))
    return std::make_unique<Winograd<4, 5>>(c, L, batch, x, y, dy, dx, w_canon, bias, act,
                                            one_weight_pass);
  return std::make_unique<Winograd<4, 3>>(c, L, batch, x, y, dy, dx, w_canon, bias, act,
                                          one_weight_pass);
}

}  // namespace dcgan::cpu
