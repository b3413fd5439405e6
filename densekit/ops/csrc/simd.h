// SIMD helpers shared by densekit's CPU kernels (selective_scan_cpu.cpp,
// ss2d_scan_cpu.cpp): GCC/Clang vector extensions, so one source serves
// AVX-512, AVX2 and SSE (the width follows the compiler's target flags).
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace densekit {

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

// softplus(z) = log(1 + exp(z)), torch's rule: z itself above 20. Written
// max(z, 0) + log1p(exp(-|z|)) so no exp overflows; log1p of y in (0, 1]
// is Cephes' logf on 1 + y in [1, 2] with the log1p correction
// log1p(y) = log(1 + y) * y / ((1 + y) - 1).
inline Simd<float>::V vlog1p01(Simd<float>::V y) {
  using V = Simd<float>::V;
  const V z = 1.0f + y;
  const auto big = z > 1.41421356237f;  // z = m 2^e, m in [1/sqrt2, sqrt2)
  const V e = big ? splat(1.0f) : splat(0.0f);
  const V m = big ? z * 0.5f : z;
  const V x = m - 1.0f;
  const V xx = x * x;
  V p = x * 7.0376836292e-2f - 1.1514610310e-1f;
  p = p * x + 1.1676998740e-1f;
  p = p * x - 1.2420140846e-1f;
  p = p * x + 1.4249322787e-1f;
  p = p * x - 1.6668057665e-1f;
  p = p * x + 2.0000714765e-1f;
  p = p * x - 2.4999993993e-1f;
  p = p * x + 3.3333331174e-1f;
  V r = p * x * xx + e * -2.12194440e-4f - 0.5f * xx;
  r = x + r + e * 0.693359375f;
  const V zm1 = z - 1.0f;
  return zm1 == 0.0f ? y : r * (y / zm1);
}

inline Simd<float>::V vsoftplus(Simd<float>::V z) {
  using V = Simd<float>::V;
  const V neg_abs = z < 0.0f ? z : -z;
  const V pos = z > 0.0f ? z : splat(0.0f);
  const V sp = pos + vlog1p01(vexp(neg_abs));
  return z > 20.0f ? z : sp;
}

// float64 (parity tests): libm per lane, torch's formula.
inline Simd<double>::V vsoftplus(Simd<double>::V z) {
  for (int i = 0; i < kLanes<double>; ++i) {
    z[i] = z[i] > 20.0 ? z[i] : std::log1p(std::exp(z[i]));
  }
  return z;
}

// sigmoid(z) = d softplus / dz.
inline Simd<float>::V vsigmoid(Simd<float>::V z) {
  return 1.0f / (1.0f + vexp(-z));
}

inline Simd<double>::V vsigmoid(Simd<double>::V z) {
  for (int i = 0; i < kLanes<double>; ++i) z[i] = 1.0 / (1.0 + std::exp(-z[i]));
  return z;
}

}  // namespace densekit
