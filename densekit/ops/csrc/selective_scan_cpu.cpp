// Mamba's S6 selective scan on the CPU: forward and backward kernels.
//
// The recurrence (Gu & Dao 2023, Algorithm 2; real A, no z gate), per batch
// b, channel d (reading group g = d / (D / G) of B and C) and state n:
//
//     h_t = exp(dt_t A[d, n]) h_{t-1} + dt_t B[g, n, t] u_t,   h_{-1} = 0
//     y_t = sum_n C[g, n, t] h_t
//
// `dt` is the final step size (bias and softplus are applied by the caller,
// as is the skip term D u), matching densekit's pure-PyTorch
// `_ChunkedSelectiveScan`, which these kernels replace on the CPU.
//
// Layout and parallelism (GCC/Clang vector extensions, so one source
// serves AVX-512, AVX2 and SSE; exp is a vectorised polynomial, vexp). B and
// C are transposed once to (b, G, L, Np) so that a step reads N contiguous
// values, N zero-padded to whole vectors (padded states stay 0). The
// forward pass puts one channel per SIMD lane (16 channels of a group per
// AVX-512 float32 vector, N state vectors in registers, B and C broadcast),
// runs blocks of channels in parallel (at::parallel_for, torch's intra-op
// threads) and saves the state entering every chunk of `chunk` steps:
// O(b D N L / chunk) memory. The backward pass keeps one channel at a time
// with its N states across the SIMD lanes, recomputes a chunk's states from
// its saved start (held in two chunk x N buffers that stay in L1), then runs
// the adjoint
//     g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}
// backwards through the chunk, as mamba's CUDA kernel does. Its tasks are
// (b, g, slice of the group's channels); each task accumulates dB and dC of
// its channels into its own (L, N) partial buffer, and the partials are
// summed afterwards, so no two threads write the same memory.
#include "ops.h"

#include <torch/extension.h>

#include <ATen/Parallel.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace densekit {
namespace {

// Decays exp(dt A) are clamped below at exp(-60) (as in the PyTorch path):
// keeps decays and their products normal floats (denormals are 10-100x
// slower on x86); the dropped mass is below float64 rounding.
constexpr double kLogDecayMin = -60.0;

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

// SIMD vector of T (float or double) and the matching integer vector.
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef float U __attribute__((vector_size(kVecBytes), aligned(4)));
  typedef int32_t I __attribute__((vector_size(kVecBytes)));
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef double U __attribute__((vector_size(kVecBytes), aligned(8)));
  typedef int64_t I __attribute__((vector_size(kVecBytes)));
};
template <typename T>
constexpr int kLanes = kVecBytes / sizeof(T);

template <typename T>
inline typename Simd<T>::V load(const T* p) {
  return *reinterpret_cast<const typename Simd<T>::U*>(p);
}
template <typename T>
inline void store(T* p, typename Simd<T>::V v) {
  *reinterpret_cast<typename Simd<T>::U*>(p) = v;
}
template <typename T>
inline typename Simd<T>::V splat(T x) {
  return typename Simd<T>::V{} + x;
}

// exp of a float vector (Cephes' expf: k = round(x / ln 2), x - k ln 2 in
// two parts, degree-6 polynomial, times 2^k); relative error below 2 ulp.
// With AVX-512, vrndscaleps rounds and vscalefps applies 2^k, which also
// gives 0 for large negative x and inf for large positive x without clamps.
#if defined(__AVX512F__)
inline Simd<float>::V vexp(Simd<float>::V x) {
  using V = Simd<float>::V;
  const V k = _mm512_roundscale_ps(x * 1.44269504088896341f,
                                   _MM_FROUND_TO_NEAREST_INT |
                                       _MM_FROUND_NO_EXC);
#else
inline Simd<float>::V vexp(Simd<float>::V x) {
  using V = Simd<float>::V;
  using I = Simd<float>::I;
  const V lo = splat(-87.0f), hi = splat(88.0f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const V magic = splat(12582912.0f);  // 1.5 * 2^23: x + magic rounds x
  const V k = (x * 1.44269504088896341f + magic) - magic;
#endif
  V r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V e = p * r * r + r + 1.0f;
#if defined(__AVX512F__)
  return _mm512_scalef_ps(e, k);
#else
  const I bits = (__builtin_convertvector(k, I) + 127) << 23;
  return e * __builtin_bit_cast(V, bits);
#endif
}

// float64 (parity tests, not speed): libm's exp per lane.
inline Simd<double>::V vexp(Simd<double>::V x) {
  for (int i = 0; i < kLanes<double>; ++i) x[i] = std::exp(x[i]);
  return x;
}

// v with lanes i and i ^ W swapped (compile-time indices).
template <int W, typename V, std::size_t... Is>
inline V xor_swap(V v, std::index_sequence<Is...>) {
  return __builtin_shufflevector(v, v, (Is ^ W)...);
}

// Sum of a vector's lanes (XOR butterfly: every lane ends with the total).
template <typename T>
inline T hsum(typename Simd<T>::V v) {
  constexpr auto idx = std::make_index_sequence<kLanes<T>>();
  if constexpr (kLanes<T> >= 16) v += xor_swap<8>(v, idx);
  if constexpr (kLanes<T> >= 8) v += xor_swap<4>(v, idx);
  if constexpr (kLanes<T> >= 4) v += xor_swap<2>(v, idx);
  v += xor_swap<1>(v, idx);
  return v[0];
}

// exp(max(dt A, kLogDecayMin)) for one vector of states.
template <typename T>
inline typename Simd<T>::V decay(T dt, typename Simd<T>::V a) {
  const typename Simd<T>::V la = a * dt;
  const typename Simd<T>::V lo = splat(static_cast<T>(kLogDecayMin));
  return vexp(la < lo ? lo : la);
}

// Pointers of one (b, d) channel; rows of B, C, A have Np = nv * lanes
// (zero-padded) entries.
template <typename T>
struct Channel {
  const T* __restrict__ u;   // (L,)
  const T* __restrict__ dt;  // (L,)
  const T* __restrict__ A;   // (Np,)
  const T* __restrict__ Bt;  // (L, Np)
  const T* __restrict__ Ct;  // (L, Np)
};

// Gradient outputs of one channel; dBt, dCt (L, Np) and dA (Np,)
// accumulate.
template <typename T>
struct ChannelGrads {
  T* __restrict__ du;   // (L,)
  T* __restrict__ ddt;  // (L,)
  T* __restrict__ dA;   // (Np,)
  T* __restrict__ dBt;  // (L, Np)
  T* __restrict__ dCt;  // (L, Np)
};

// One block of up to kLanes<T> channels of one (batch, group), one channel
// per SIMD lane, forward in time. Inputs, outputs and chunk starts are in
// the tensors' (channel, time) layouts; each chunk of time is gathered into
// (time, lane) tiles first. kN > 0: N known at compile time (the N state
// vectors stay in registers); 0: any N, states in `h_scratch`.
template <typename T>
struct Block {
  const T* __restrict__ u;   // (nc, L) rows of stride L
  const T* __restrict__ dt;  // (nc, L)
  const T* __restrict__ Bt;  // (L, Np) of the group
  const T* __restrict__ Ct;  // (L, Np)
  T* __restrict__ y;         // (nc, L)
  T* __restrict__ starts;    // (nc, num_chunks, Np) or nullptr
  int nc;                    // channels in the block, <= kLanes<T>
};

template <typename T, int kN>
void forward_block(const Block<T>& blk, const T* __restrict__ A_lanes,
                   int64_t length, int64_t n_rt, int64_t np, int64_t chunk,
                   T* __restrict__ tiles,
                   typename Simd<T>::V* __restrict__ h_scratch) {
  using V = typename Simd<T>::V;
  constexpr int W = kLanes<T>;
  const int64_t N = kN > 0 ? kN : n_rt;
  const int64_t num_chunks = (length + chunk - 1) / chunk;
  V local[kN > 0 ? kN : 1];
  V* __restrict__ h = kN > 0 ? local : h_scratch;
  for (int64_t n = 0; n < N; ++n) h[n] = V{};
  // three (min(chunk, L), W) tiles
  const int64_t tile = std::min(chunk, length) * W;
  T* __restrict__ tile_u = tiles;
  T* __restrict__ tile_dt = tiles + tile;
  T* __restrict__ tile_y = tiles + 2 * tile;
  const V lo = splat(static_cast<T>(kLogDecayMin));
  for (int64_t k = 0; k < num_chunks; ++k) {
    const int64_t t0 = k * chunk, rows = std::min(chunk, length - t0);
    if (blk.starts != nullptr) {
      for (int lane = 0; lane < blk.nc; ++lane) {
        T* dst = blk.starts + (lane * num_chunks + k) * np;
        for (int64_t n = 0; n < N; ++n) dst[n] = h[n][lane];
      }
    }
    for (int lane = 0; lane < W; ++lane) {  // gather; idle lanes get 0
      const bool on = lane < blk.nc;
      const T* __restrict__ su = blk.u + lane * length + t0;
      const T* __restrict__ sd = blk.dt + lane * length + t0;
      for (int64_t i = 0; i < rows; ++i) {
        tile_u[i * W + lane] = on ? su[i] : T(0);
        tile_dt[i * W + lane] = on ? sd[i] : T(0);
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      const V dtv = load(tile_dt + i * W);
      const V dtu = dtv * load(tile_u + i * W);
      const T* __restrict__ b = blk.Bt + (t0 + i) * np;
      const T* __restrict__ c = blk.Ct + (t0 + i) * np;
      V acc{};
      for (int64_t n = 0; n < N; ++n) {
        const V la = dtv * load(A_lanes + n * W);
        h[n] = vexp(la < lo ? lo : la) * h[n] + dtu * b[n];
        acc += c[n] * h[n];
      }
      store(tile_y + i * W, acc);
    }
    for (int lane = 0; lane < blk.nc; ++lane) {  // scatter
      T* __restrict__ dy = blk.y + lane * length + t0;
      for (int64_t i = 0; i < rows; ++i) dy[i] = tile_y[i * W + lane];
    }
  }
}

// Backward of one channel from its chunk starts; `abuf`/`hbuf` hold
// (chunk, nv) vectors, `r`/`dA_acc` nv vectors.
template <typename T, int kNV>
void backward_channel(const Channel<T>& ch, const T* __restrict__ dy,
                      const T* __restrict__ starts,
                      const ChannelGrads<T>& gr, int64_t length, int nv_rt,
                      int64_t chunk, typename Simd<T>::V* __restrict__ hbuf,
                      typename Simd<T>::V* __restrict__ abuf,
                      typename Simd<T>::V* scratch) {
  using V = typename Simd<T>::V;
  constexpr int L_ = kLanes<T>;
  const int nv = kNV > 0 ? kNV : nv_rt;
  V local[2 * (kNV > 0 ? kNV : 1)];
  V* __restrict__ r = kNV > 0 ? local : scratch;  // a_{t+1} g_{t+1}
  V* __restrict__ dA_acc = r + nv;
  for (int j = 0; j < nv; ++j) r[j] = dA_acc[j] = V{};
  const int64_t num_chunks = (length + chunk - 1) / chunk;
  for (int64_t k = num_chunks - 1; k >= 0; --k) {
    const int64_t t0 = k * chunk;
    const int64_t t1 = std::min(length, t0 + chunk);
    const T* __restrict__ h0 = starts + k * nv * L_;  // h_{t0 - 1}
    // recompute the chunk's decays and states
    for (int64_t t = t0; t < t1; ++t) {
      const T dt = ch.dt[t];
      const T dtu = dt * ch.u[t];
      const T* __restrict__ b = ch.Bt + t * nv * L_;
      V* a = abuf + (t - t0) * nv;
      V* h = hbuf + (t - t0) * nv;
      for (int j = 0; j < nv; ++j) {
        const V hp = t > t0 ? h[j - nv] : load(h0 + j * L_);
        a[j] = decay(dt, load(ch.A + j * L_));
        h[j] = a[j] * hp + dtu * load(b + j * L_);
      }
    }
    // adjoints g_t = C_t dy_t + a_{t+1} g_{t+1}, backwards through the chunk
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const T dt = ch.dt[t];
      const T ut = ch.u[t];
      const T dtu = dt * ut;
      const T dyt = dy[t];
      const T* __restrict__ b = ch.Bt + t * nv * L_;
      const T* __restrict__ c = ch.Ct + t * nv * L_;
      const V* a = abuf + (t - t0) * nv;
      const V* h = hbuf + (t - t0) * nv;
      T* __restrict__ db = gr.dBt + t * nv * L_;
      T* __restrict__ dc = gr.dCt + t * nv * L_;
      V g_b{}, gx_a{};
      for (int j = 0; j < nv; ++j) {
        const V hp = t > t0 ? h[j - nv] : load(h0 + j * L_);
        const V g = r[j] + load(c + j * L_) * dyt;  // dL/dh_t
        store(dc + j * L_, load(dc + j * L_) + dyt * h[j]);
        store(db + j * L_, load(db + j * L_) + g * dtu);
        g_b += g * load(b + j * L_);
        const V gx = g * a[j] * hp;  // through the decay exp(dt A)
        gx_a += gx * load(ch.A + j * L_);
        dA_acc[j] += gx * dt;
        r[j] = a[j] * g;
      }
      const T sum_gb = hsum<T>(g_b);
      gr.du[t] = dt * sum_gb;
      gr.ddt[t] = hsum<T>(gx_a) + ut * sum_gb;
    }
  }
  for (int j = 0; j < nv; ++j) {
    store(gr.dA + j * L_, load(gr.dA + j * L_) + dA_acc[j]);
  }
}

void check_inputs(const at::Tensor& u, const at::Tensor& dt,
                  const at::Tensor& A, const at::Tensor& B,
                  const at::Tensor& C, int64_t chunk) {
  TORCH_CHECK(u.device().is_cpu(), "selective_scan_cpu: u must be on the CPU");
  TORCH_CHECK(u.scalar_type() == at::kFloat || u.scalar_type() == at::kDouble,
              "selective_scan_cpu: float32 or float64 inputs, got ",
              u.scalar_type());
  for (const at::Tensor* x : {&dt, &A, &B, &C}) {
    TORCH_CHECK(x->device().is_cpu() && x->scalar_type() == u.scalar_type(),
                "selective_scan_cpu: all inputs must be CPU tensors of u's "
                "dtype");
  }
  TORCH_CHECK(u.dim() == 3 && dt.sizes() == u.sizes(),
              "selective_scan_cpu: u and dt must be (batch, D, L)");
  TORCH_CHECK(A.dim() == 2 && A.size(0) == u.size(1),
              "selective_scan_cpu: A must be (D, N)");
  TORCH_CHECK(B.dim() == 4 && B.size(0) == u.size(0) &&
                  B.size(2) == A.size(1) && B.size(3) == u.size(2) &&
                  u.size(1) % B.size(1) == 0 && C.sizes() == B.sizes(),
              "selective_scan_cpu: B and C must be (batch, G, N, L), G | D");
  TORCH_CHECK(chunk >= 1, "selective_scan_cpu: chunk must be >= 1");
}

// x (..., N) zero-padded to (..., np).
at::Tensor pad_last(const at::Tensor& x, int64_t np) {
  const int64_t n = x.size(-1);
  if (n == np) return x.contiguous();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = np;
  at::Tensor out = at::zeros(shape, x.options());
  out.narrow(-1, 0, n).copy_(x);
  return out;
}

// Calls fn(std::integral_constant<int, kNV>) with kNV = nv for 1, 2 and 4
// vectors per state (the states in registers), else kNV = 0 (any nv).
template <typename Fn>
void with_vectors_per_state(int nv, Fn&& fn) {
  switch (nv) {
    case 1: fn(std::integral_constant<int, 1>()); break;
    case 2: fn(std::integral_constant<int, 2>()); break;
    case 4: fn(std::integral_constant<int, 4>()); break;
    default: fn(std::integral_constant<int, 0>()); break;
  }
}

// Calls fn(std::integral_constant<int, kN>) with kN = N for N = 16 (Mamba,
// VMamba, Mamba YOLO) and 8, else kN = 0 (any N).
template <typename Fn>
void with_state_size(int64_t N, Fn&& fn) {
  switch (N) {
    case 16: fn(std::integral_constant<int, 16>()); break;
    case 8: fn(std::integral_constant<int, 8>()); break;
    default: fn(std::integral_constant<int, 0>()); break;
  }
}

template <typename T>
int vectors_per_state(int64_t N) {
  return static_cast<int>((N + kLanes<T> - 1) / kLanes<T>);
}

int vectors_for(const at::Tensor& u, int64_t N) {
  return u.scalar_type() == at::kDouble ? vectors_per_state<double>(N)
                                        : vectors_per_state<float>(N);
}

int lanes_for(const at::Tensor& u) {
  return u.scalar_type() == at::kDouble ? kLanes<double> : kLanes<float>;
}

// Checked inputs in the kernels' layouts: u, dt contiguous (b, D, L); A
// (D, Np), B and C transposed to (b, G, L, Np), N zero-padded to Np.
struct ScanInputs {
  at::Tensor u, dt, A, Bt, Ct;
  int64_t batch, dim, length, groups, N, np, per_group, num_chunks;
  int nv;  // SIMD vectors per state row
};

ScanInputs prepare_inputs(const at::Tensor& u_in, const at::Tensor& dt_in,
                          const at::Tensor& A_in, const at::Tensor& B_in,
                          const at::Tensor& C_in, int64_t chunk) {
  check_inputs(u_in, dt_in, A_in, B_in, C_in, chunk);
  ScanInputs in;
  in.u = u_in.contiguous();
  in.dt = dt_in.contiguous();
  in.batch = in.u.size(0);
  in.dim = in.u.size(1);
  in.length = in.u.size(2);
  in.groups = B_in.size(1);
  in.N = A_in.size(1);
  in.nv = vectors_for(in.u, in.N);
  in.np = in.nv * lanes_for(in.u);
  in.A = pad_last(A_in, in.np);
  in.Bt = pad_last(B_in.transpose(2, 3), in.np);
  in.Ct = pad_last(C_in.transpose(2, 3), in.np);
  in.per_group = in.dim / in.groups;
  in.num_chunks = (in.length + chunk - 1) / chunk;
  return in;
}

}  // namespace

// y (b, D, L) and, when save_states, the state entering every chunk of
// `chunk` steps (b, D, ceil(L / chunk), Np), N zero-padded to Np (an opaque
// tensor for selective_scan_bwd); else an empty tensor.
std::vector<at::Tensor> selective_scan_fwd(const at::Tensor& u_in,
                                           const at::Tensor& dt_in,
                                           const at::Tensor& A_in,
                                           const at::Tensor& B_in,
                                           const at::Tensor& C_in,
                                           int64_t chunk, bool save_states) {
  const ScanInputs in = prepare_inputs(u_in, dt_in, A_in, B_in, C_in, chunk);
  const at::Tensor &u = in.u, &dt = in.dt, &A = in.A, &Bt = in.Bt, &Ct = in.Ct;
  const int64_t batch = in.batch, dim = in.dim, length = in.length;
  const int64_t groups = in.groups, N = in.N, np = in.np;
  const int64_t per_group = in.per_group, num_chunks = in.num_chunks;
  at::Tensor y = at::empty_like(u);
  // zeros: the forward writes the N real states, padded ones stay 0
  at::Tensor starts =
      save_states ? at::zeros({batch, dim, num_chunks, np}, u.options())
                  : at::empty({0}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_fwd", [&] {
    using T = scalar_t;
    using V = typename Simd<T>::V;
    const T* up = u.data_ptr<T>();
    const T* dtp = dt.data_ptr<T>();
    const T* Ap = A.data_ptr<T>();
    const T* Bp = Bt.data_ptr<T>();
    const T* Cp = Ct.data_ptr<T>();
    T* yp = y.data_ptr<T>();
    T* sp = save_states ? starts.data_ptr<T>() : nullptr;
    constexpr int W = kLanes<T>;
    const int64_t blocks = (per_group + W - 1) / W;  // per (batch, group)
    with_state_size(N, [&](auto n_const) {
      constexpr int kN = decltype(n_const)::value;
      at::parallel_for(
          0, batch * groups * blocks, 1, [&](int64_t begin, int64_t end) {
            std::vector<T> tiles(3 * std::min(chunk, length) * W);
            std::vector<T> A_lanes(N * W);
            std::vector<V> h_scratch(kN > 0 ? 0 : N);
            for (int64_t task = begin; task < end; ++task) {
              const int64_t b = task / (groups * blocks);
              const int64_t g = (task / blocks) % groups;
              const int64_t c0 = g * per_group + (task % blocks) * W;
              const int nc = static_cast<int>(
                  std::min<int64_t>(W, (g + 1) * per_group - c0));
              for (int64_t n = 0; n < N; ++n) {  // A as (n, lane)
                for (int lane = 0; lane < W; ++lane) {
                  A_lanes[n * W + lane] =
                      lane < nc ? Ap[(c0 + lane) * np + n] : T(0);
                }
              }
              const int64_t row = (b * dim + c0) * length;
              const int64_t bc = (b * groups + g) * length * np;
              const Block<T> blk{
                  up + row, dtp + row, Bp + bc, Cp + bc, yp + row,
                  sp ? sp + (b * dim + c0) * num_chunks * np : nullptr, nc};
              forward_block<T, kN>(blk, A_lanes.data(), length, N, np, chunk,
                                   tiles.data(), h_scratch.data());
            }
          });
    });
  });
  return {y, starts};
}

// (du, ddt, dA, dB, dC) of selective_scan_fwd, from the chunk starts it
// saved and dy (b, D, L).
std::vector<at::Tensor> selective_scan_bwd(
    const at::Tensor& u_in, const at::Tensor& dt_in, const at::Tensor& A_in,
    const at::Tensor& B_in, const at::Tensor& C_in,
    const at::Tensor& starts_in, const at::Tensor& dy_in, int64_t chunk) {
  const ScanInputs in = prepare_inputs(u_in, dt_in, A_in, B_in, C_in, chunk);
  const at::Tensor &u = in.u, &dt = in.dt, &A = in.A, &Bt = in.Bt, &Ct = in.Ct;
  const int64_t batch = in.batch, dim = in.dim, length = in.length;
  const int64_t groups = in.groups, N = in.N, np = in.np;
  const int nv = in.nv;
  const int64_t per_group = in.per_group, num_chunks = in.num_chunks;
  const at::Tensor dy = dy_in.to(u.scalar_type()).contiguous();
  const at::Tensor starts = starts_in.contiguous();
  TORCH_CHECK(dy.sizes() == u.sizes(),
              "selective_scan_bwd: dy must have u's shape");
  TORCH_CHECK(starts.dim() == 4 && starts.size(0) == batch &&
                  starts.size(1) == dim && starts.size(2) == num_chunks &&
                  starts.size(3) == np,
              "selective_scan_bwd: chunk starts do not match the inputs");
  // slices of a group's channels per task: enough tasks for every thread
  const int64_t tasks_wanted = 4 * at::get_num_threads();
  const int64_t slices = std::max<int64_t>(
      1, std::min<int64_t>(per_group, (tasks_wanted + batch * groups - 1) /
                                          (batch * groups)));
  const int64_t per_slice = (per_group + slices - 1) / slices;
  at::Tensor du = at::empty_like(u), ddt = at::empty_like(u);
  at::Tensor dA_part = at::zeros({batch, dim, np}, u.options());
  at::Tensor dB_part =
      at::zeros({batch, groups, slices, length, np}, u.options());
  at::Tensor dC_part = at::zeros_like(dB_part);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_bwd", [&] {
    using T = scalar_t;
    using V = typename Simd<T>::V;
    const T* up = u.data_ptr<T>();
    const T* dtp = dt.data_ptr<T>();
    const T* Ap = A.data_ptr<T>();
    const T* Bp = Bt.data_ptr<T>();
    const T* Cp = Ct.data_ptr<T>();
    const T* dyp = dy.data_ptr<T>();
    const T* sp = starts.data_ptr<T>();
    T* dup = du.data_ptr<T>();
    T* ddtp = ddt.data_ptr<T>();
    T* dAp = dA_part.data_ptr<T>();
    T* dBp = dB_part.data_ptr<T>();
    T* dCp = dC_part.data_ptr<T>();
    with_vectors_per_state(nv, [&](auto nv_const) {
      constexpr int kNV = decltype(nv_const)::value;
      at::parallel_for(
          0, batch * groups * slices, 1, [&](int64_t begin, int64_t end) {
            const int64_t rows = std::min(chunk, length);
            std::vector<V> hbuf(rows * nv), abuf(rows * nv);
            std::vector<V> scratch(kNV > 0 ? 0 : 2 * nv);
            for (int64_t task = begin; task < end; ++task) {
              const int64_t b = task / (groups * slices);
              const int64_t g = (task / slices) % groups, s = task % slices;
              const int64_t bc = (b * groups + g) * length * np;
              const int64_t part = task * length * np;
              const int64_t d_begin = g * per_group + s * per_slice;
              const int64_t d_end =
                  std::min((g + 1) * per_group, d_begin + per_slice);
              for (int64_t d = d_begin; d < d_end; ++d) {
                const int64_t i = b * dim + d;
                const Channel<T> ch{up + i * length, dtp + i * length,
                                    Ap + d * np, Bp + bc, Cp + bc};
                const ChannelGrads<T> gr{dup + i * length, ddtp + i * length,
                                         dAp + i * np, dBp + part,
                                         dCp + part};
                backward_channel<T, kNV>(ch, dyp + i * length,
                                         sp + i * num_chunks * np, gr, length,
                                         nv, chunk, hbuf.data(), abuf.data(),
                                         scratch.data());
              }
            }
          });
    });
  });
  at::Tensor dA = dA_part.sum(0).narrow(1, 0, N);
  // (b, G, L, Np) -> (b, G, N, L)
  at::Tensor dB = dB_part.sum(2).narrow(3, 0, N).transpose(2, 3);
  at::Tensor dC = dC_part.sum(2).narrow(3, 0, N).transpose(2, 3);
  return {du, ddt, dA, dB, dC};
}

}  // namespace densekit
