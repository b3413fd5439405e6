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
// Layout and parallelism. Time runs sequentially per channel with the N
// states in SIMD registers (GCC/Clang vector extensions: one AVX-512 vector
// for N = 16 in float32, two AVX2 vectors; N is zero-padded to whole
// vectors, padded states stay 0). B and C are transposed once to
// (b, G, L, N) so that every step reads N contiguous values, and exp is a
// vectorised polynomial (vexp below). The forward pass runs (b, d) channels in parallel
// (at::parallel_for, torch's intra-op threads) and saves the state entering
// every chunk of `chunk` steps: O(b D N L / chunk) memory. The backward pass
// recomputes a chunk's states from its saved start (held in two chunk x N
// buffers that stay in L1), then runs the adjoint
//     g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}
// backwards through the chunk, as mamba's CUDA kernel does. Its tasks are
// (b, g, slice of the group's channels); each task accumulates dB and dC of
// its channels into its own (L, N) partial buffer, and the partials are
// summed afterwards, so no two threads write the same memory.
#include <torch/extension.h>

#include <ATen/Parallel.h>

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

// exp of a float vector (Cephes' expf: k = round(x / ln 2) by the 1.5 * 2^23
// trick, x - k ln 2 in two parts, degree-6 polynomial, 2^k by building the
// exponent bits); relative error below 2 ulp on [-87, 88].
inline Simd<float>::V vexp(Simd<float>::V x) {
  using V = Simd<float>::V;
  using I = Simd<float>::I;
  const V lo = splat(-87.0f), hi = splat(88.0f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const V magic = splat(12582912.0f);
  const V k = (x * 1.44269504088896341f + magic) - magic;
  V r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V e = p * r * r + r + 1.0f;
  const I bits = (__builtin_convertvector(k, I) + 127) << 23;
  return e * __builtin_bit_cast(V, bits);
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

// kNV > 0: vectors per state known at compile time (the states stay in
// registers); 0: nv_rt vectors, kept in `scratch`.
template <typename T, int kNV>
void forward_channel(const Channel<T>& ch, T* __restrict__ y,
                     T* __restrict__ starts, int64_t length, int nv_rt,
                     int64_t chunk, typename Simd<T>::V* scratch) {
  using V = typename Simd<T>::V;
  constexpr int L_ = kLanes<T>;
  const int nv = kNV > 0 ? kNV : nv_rt;
  V local[kNV > 0 ? kNV : 1];
  V* __restrict__ h = kNV > 0 ? local : scratch;
  for (int j = 0; j < nv; ++j) h[j] = V{};
  for (int64_t t0 = 0, k = 0; t0 < length; t0 += chunk, ++k) {
    if (starts != nullptr) {
      for (int j = 0; j < nv; ++j) store(starts + (k * nv + j) * L_, h[j]);
    }
    const int64_t t1 = std::min(length, t0 + chunk);
    for (int64_t t = t0; t < t1; ++t) {
      const T dt = ch.dt[t];
      const T dtu = dt * ch.u[t];
      const T* __restrict__ b = ch.Bt + t * nv * L_;
      const T* __restrict__ c = ch.Ct + t * nv * L_;
      V acc{};
      for (int j = 0; j < nv; ++j) {
        h[j] = decay(dt, load(ch.A + j * L_)) * h[j] + dtu * load(b + j * L_);
        acc += load(c + j * L_) * h[j];
      }
      y[t] = hsum<T>(acc);
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
  check_inputs(u_in, dt_in, A_in, B_in, C_in, chunk);
  const at::Tensor u = u_in.contiguous(), dt = dt_in.contiguous();
  const int64_t batch = u.size(0), dim = u.size(1), length = u.size(2);
  const int64_t groups = B_in.size(1), N = A_in.size(1);
  const int nv = vectors_for(u, N);
  const int64_t np = nv * lanes_for(u);
  const at::Tensor A = pad_last(A_in, np);
  const at::Tensor Bt = pad_last(B_in.transpose(2, 3), np);  // (b, G, L, Np)
  const at::Tensor Ct = pad_last(C_in.transpose(2, 3), np);
  const int64_t per_group = dim / groups;
  const int64_t num_chunks = (length + chunk - 1) / chunk;
  at::Tensor y = at::empty_like(u);
  at::Tensor starts =
      save_states ? at::empty({batch, dim, num_chunks, np}, u.options())
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
    with_vectors_per_state(nv, [&](auto nv_const) {
      constexpr int kNV = decltype(nv_const)::value;
      at::parallel_for(0, batch * dim, 1, [&](int64_t begin, int64_t end) {
        std::vector<V> scratch(kNV > 0 ? 0 : nv);
        for (int64_t i = begin; i < end; ++i) {
          const int64_t b = i / dim, d = i % dim, g = d / per_group;
          const int64_t bc = (b * groups + g) * length * np;
          const Channel<T> ch{up + i * length, dtp + i * length, Ap + d * np,
                              Bp + bc, Cp + bc};
          forward_channel<T, kNV>(ch, yp + i * length,
                                  sp ? sp + i * num_chunks * np : nullptr,
                                  length, nv, chunk, scratch.data());
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
  check_inputs(u_in, dt_in, A_in, B_in, C_in, chunk);
  const at::Tensor u = u_in.contiguous(), dt = dt_in.contiguous();
  const int64_t batch = u.size(0), dim = u.size(1), length = u.size(2);
  const int64_t groups = B_in.size(1), N = A_in.size(1);
  const int nv = vectors_for(u, N);
  const int64_t np = nv * lanes_for(u);
  const at::Tensor A = pad_last(A_in, np);
  const at::Tensor Bt = pad_last(B_in.transpose(2, 3), np);
  const at::Tensor Ct = pad_last(C_in.transpose(2, 3), np);
  const at::Tensor dy = dy_in.to(u.scalar_type()).contiguous();
  const at::Tensor starts = starts_in.contiguous();
  const int64_t per_group = dim / groups;
  const int64_t num_chunks = (length + chunk - 1) / chunk;
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "densekit compiled ops (CPU selective scan)";
  m.def("selective_scan_fwd", &densekit::selective_scan_fwd,
        "S6 selective scan forward (CPU): y and per-chunk start states",
        py::arg("u"), py::arg("dt"), py::arg("A"), py::arg("B"),
        py::arg("C"), py::arg("chunk"), py::arg("save_states"));
  m.def("selective_scan_bwd", &densekit::selective_scan_bwd,
        "S6 selective scan backward (CPU): du, ddt, dA, dB, dC",
        py::arg("u"), py::arg("dt"), py::arg("A"), py::arg("B"),
        py::arg("C"), py::arg("starts"), py::arg("dy"), py::arg("chunk"));
}
