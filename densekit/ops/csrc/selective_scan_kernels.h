// The selective-scan recurrences of the CPU kernels, shared by
// selective_scan_cpu.cpp (one sequence per channel) and ss2d_scan_cpu.cpp
// (SS2D's four routes): a forward block (one channel per SIMD lane) and a
// backward channel (its states across the lanes), plus layout helpers.
// See selective_scan_cpu.cpp for the design.
#pragma once

#include "simd.h"

#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace densekit {

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

// x (..., N) zero-padded to (..., np).
inline at::Tensor pad_last(const at::Tensor& x, int64_t np) {
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

inline int vectors_for(const at::Tensor& u, int64_t N) {
  return u.scalar_type() == at::kDouble ? vectors_per_state<double>(N)
                                        : vectors_per_state<float>(N);
}

inline int lanes_for(const at::Tensor& u) {
  return u.scalar_type() == at::kDouble ? kLanes<double> : kLanes<float>;
}

}  // namespace densekit
