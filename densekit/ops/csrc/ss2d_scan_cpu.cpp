// SS2D's four-route selective scan on the CPU as one op (forward, backward).
//
// Mamba YOLO's SS2D (VMamba's 2D-selective-scan) unfolds an H x W map into
// four routes k (row-major, column-major and both reversed; position of
// step t: pos_k[t]), scans each with its own channels k D + d of A, D and
// the delta bias, and sums the routes back into the map:
//
//     dt_t = softplus(delta_k[d, pos_k[t]] + bias[k D + d])
//     h_t  = exp(dt_t A[k D + d]) h_{t-1} + dt_t B_k[pos_k[t]] x[d, pos_k[t]]
//     y[pos_k[t], d] += sum_n C_k[n, pos_k[t]] h_t[n] + Dskip[k D + d] x
//
// The unfused path materialises the cross-scan copies of x and delta
// (4 x b D L each), applies bias + softplus and the skip term as separate
// tensor ops, and merges four (b, D, L) outputs with flips and transposes.
// Here x and delta are read in map order and permuted per block of
// channels into cache-sized scratch rows, the step size and skip are
// computed in the op, and the routes accumulate straight into y in the
// (b, L, D) layout the following LayerNorm reads. The recurrences are
// selective_scan_cpu.cpp's (forward_block, backward_channel: the same code).
//
// Parallelism: tasks own blocks (forward) or slices (backward) of the D
// channels of one batch element and run all four routes of them, so every
// write to y / dx is owned by one task; per-task scratch, no locks.
#include "ops.h"
#include "selective_scan_kernels.h"
#include "simd.h"

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace densekit {
namespace {

constexpr int kRoutes = 4;

// pos[k * L + t]: the map position (row-major h W + w) of step t of route
// k: 0 row-major, 1 column-major, 2 and 3 their reversals.
std::vector<int64_t> route_positions(int64_t height, int64_t width) {
  const int64_t L = height * width;
  std::vector<int64_t> pos(kRoutes * L);
  for (int64_t t = 0; t < L; ++t) {
    const int64_t col = (t % height) * width + t / height;
    pos[t] = t;
    pos[L + t] = col;
    pos[2 * L + (L - 1 - t)] = t;
    pos[3 * L + (L - 1 - t)] = col;
  }
  return pos;
}

struct SS2DInputs {
  at::Tensor x, dts, A, Bt, Ct, Dskip, bias;
  int64_t batch, dim, length, N, np, num_chunks;
  int nv;
  std::vector<int64_t> pos;
};

// B or C (b, K, N, L) in map order -> (b, K, L, Np) in route order, N
// zero-padded.
at::Tensor to_route_rows(const at::Tensor& m, const std::vector<int64_t>& pos,
                         int64_t np) {
  const int64_t batch = m.size(0), N = m.size(2), L = m.size(3);
  at::Tensor out = at::zeros({batch, kRoutes, L, np}, m.options());
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "ss2d_route_rows", [&] {
    const scalar_t* src = m.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, batch * kRoutes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bk = begin; bk < end; ++bk) {
        const int64_t k = bk % kRoutes;
        const scalar_t* s = src + bk * N * L;
        scalar_t* d = dst + bk * L * np;
        const int64_t* p = pos.data() + k * L;
        for (int64_t t = 0; t < L; ++t) {
          for (int64_t n = 0; n < N; ++n) d[t * np + n] = s[n * L + p[t]];
        }
      }
    });
  });
  return out;
}

// The inverse: (b, K, L, Np) route rows -> (b, K, N, L) map order.
at::Tensor from_route_rows(const at::Tensor& r, const std::vector<int64_t>& pos,
                           int64_t N) {
  const int64_t batch = r.size(0), L = r.size(2), np = r.size(3);
  at::Tensor out = at::empty({batch, kRoutes, N, L}, r.options());
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "ss2d_route_rows_back", [&] {
    const scalar_t* src = r.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, batch * kRoutes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bk = begin; bk < end; ++bk) {
        const int64_t k = bk % kRoutes;
        const scalar_t* s = src + bk * L * np;
        scalar_t* d = dst + bk * N * L;
        const int64_t* p = pos.data() + k * L;
        for (int64_t t = 0; t < L; ++t) {
          for (int64_t n = 0; n < N; ++n) d[n * L + p[t]] = s[t * np + n];
        }
      }
    });
  });
  return out;
}

SS2DInputs prepare(const at::Tensor& x_in, const at::Tensor& dts_in,
                   const at::Tensor& A_in, const at::Tensor& B_in,
                   const at::Tensor& C_in, const at::Tensor& D_in,
                   const at::Tensor& bias_in, int64_t height, int64_t width,
                   int64_t chunk) {
  TORCH_CHECK(x_in.device().is_cpu(), "ss2d_scan_cpu: CPU tensors only");
  TORCH_CHECK(x_in.scalar_type() == at::kFloat ||
                  x_in.scalar_type() == at::kDouble,
              "ss2d_scan_cpu: float32 or float64 inputs, got ",
              x_in.scalar_type());
  for (const at::Tensor* t : {&dts_in, &A_in, &B_in, &C_in, &D_in, &bias_in}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == x_in.scalar_type(),
                "ss2d_scan_cpu: all inputs must be CPU tensors of x's dtype");
  }
  TORCH_CHECK(chunk >= 1, "ss2d_scan_cpu: chunk must be >= 1");
  SS2DInputs in;
  in.x = x_in.contiguous();
  TORCH_CHECK(in.x.dim() == 3 && in.x.size(2) == height * width,
              "ss2d_scan_cpu: x must be (batch, D, H * W)");
  in.batch = in.x.size(0);
  in.dim = in.x.size(1);
  in.length = in.x.size(2);
  in.dts = dts_in.contiguous();
  TORCH_CHECK(in.dts.dim() == 4 && in.dts.size(0) == in.batch &&
                  in.dts.size(1) == kRoutes && in.dts.size(2) == in.dim &&
                  in.dts.size(3) == in.length,
              "ss2d_scan_cpu: delta must be (batch, 4, D, H * W)");
  TORCH_CHECK(A_in.dim() == 2 && A_in.size(0) == kRoutes * in.dim,
              "ss2d_scan_cpu: A must be (4 D, N)");
  in.N = A_in.size(1);
  TORCH_CHECK(B_in.dim() == 4 && B_in.size(0) == in.batch &&
                  B_in.size(1) == kRoutes && B_in.size(2) == in.N &&
                  B_in.size(3) == in.length && C_in.sizes() == B_in.sizes(),
              "ss2d_scan_cpu: B and C must be (batch, 4, N, H * W)");
  TORCH_CHECK(D_in.numel() == kRoutes * in.dim &&
                  bias_in.numel() == kRoutes * in.dim,
              "ss2d_scan_cpu: D and the delta bias must have 4 D values");
  in.nv = vectors_for(in.x, in.N);
  in.np = in.nv * lanes_for(in.x);
  in.num_chunks = (in.length + chunk - 1) / chunk;
  in.pos = route_positions(height, width);
  in.A = pad_last(A_in, in.np);
  in.Bt = to_route_rows(B_in.contiguous(), in.pos, in.np);
  in.Ct = to_route_rows(C_in.contiguous(), in.pos, in.np);
  in.Dskip = D_in.contiguous().view({-1});
  in.bias = bias_in.contiguous().view({-1});
  return in;
}

// softplus(row + bias) over one contiguous map-order row (vectorised);
// with `sig`, also its derivative sigmoid(row + bias).
template <typename T>
void step_sizes(const T* __restrict__ row, T bias, int64_t L,
                T* __restrict__ dt, T* __restrict__ sig) {
  using V = typename Simd<T>::V;
  constexpr int W = kLanes<T>;
  int64_t i = 0;
  for (; i + W <= L; i += W) {
    const V z = load(row + i) + bias;
    store(dt + i, vsoftplus(z));
    if (sig != nullptr) store(sig + i, vsigmoid(z));
  }
  if (i < L) {  // tail through one padded vector
    V z = splat(T(0));
    for (int64_t j = i; j < L; ++j) z[j - i] = row[j] + bias;
    const V sp = vsoftplus(z);
    const V sg = vsigmoid(z);
    for (int64_t j = i; j < L; ++j) {
      dt[j] = sp[j - i];
      if (sig != nullptr) sig[j] = sg[j - i];
    }
  }
}

}  // namespace

std::vector<at::Tensor> ss2d_scan_fwd(const at::Tensor& x_in,
                                      const at::Tensor& dts_in,
                                      const at::Tensor& A_in,
                                      const at::Tensor& B_in,
                                      const at::Tensor& C_in,
                                      const at::Tensor& D_in,
                                      const at::Tensor& bias_in,
                                      int64_t height, int64_t width,
                                      int64_t chunk, bool save_states) {
  const SS2DInputs in = prepare(x_in, dts_in, A_in, B_in, C_in, D_in,
                                bias_in, height, width, chunk);
  const int64_t batch = in.batch, dim = in.dim, L = in.length, N = in.N;
  const int64_t np = in.np, num_chunks = in.num_chunks;
  at::Tensor y = at::zeros({batch, L, dim}, in.x.options());
  at::Tensor starts =
      save_states
          ? at::zeros({batch, kRoutes * dim, num_chunks, np}, in.x.options())
          : at::empty({0}, in.x.options());
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "ss2d_scan_fwd", [&] {
    using T = scalar_t;
    using V = typename Simd<T>::V;
    constexpr int W = kLanes<T>;
    const T* xp = in.x.data_ptr<T>();
    const T* dp = in.dts.data_ptr<T>();
    const T* Ap = in.A.data_ptr<T>();
    const T* Bp = in.Bt.data_ptr<T>();
    const T* Cp = in.Ct.data_ptr<T>();
    const T* Dp = in.Dskip.data_ptr<T>();
    const T* biasp = in.bias.data_ptr<T>();
    T* yp = y.data_ptr<T>();
    T* sp = save_states ? starts.data_ptr<T>() : nullptr;
    const int64_t* pos = in.pos.data();
    const int64_t blocks = (dim + W - 1) / W;
    with_state_size(N, [&](auto n_const) {
      constexpr int kN = decltype(n_const)::value;
      at::parallel_for(0, batch * blocks, 1, [&](int64_t begin, int64_t end) {
        std::vector<T> tiles(3 * std::min(chunk, L) * W);
        std::vector<T> A_lanes(N * W);
        std::vector<V> h_scratch(kN > 0 ? 0 : N);
        // per block: map-order step sizes, route-order u / dt / y rows
        std::vector<T> dt_map(W * L), u_r(W * L), dt_r(W * L), y_r(W * L);
        for (int64_t task = begin; task < end; ++task) {
          const int64_t b = task / blocks, c0 = (task % blocks) * W;
          const int nc = static_cast<int>(std::min<int64_t>(W, dim - c0));
          for (int k = 0; k < kRoutes; ++k) {
            const int64_t* p = pos + k * L;
            const int64_t ch0 = k * dim + c0;  // channel of A, D, bias
            for (int lane = 0; lane < nc; ++lane) {
              const T* xrow = xp + (b * dim + c0 + lane) * L;
              const T* drow = dp + ((b * kRoutes + k) * dim + c0 + lane) * L;
              T* dtm = dt_map.data() + lane * L;
              step_sizes<T>(drow, biasp[ch0 + lane], L, dtm, nullptr);
              T* ur = u_r.data() + lane * L;
              T* dr = dt_r.data() + lane * L;
              for (int64_t t = 0; t < L; ++t) {
                ur[t] = xrow[p[t]];
                dr[t] = dtm[p[t]];
              }
            }
            for (int64_t n = 0; n < N; ++n) {
              for (int lane = 0; lane < W; ++lane) {
                A_lanes[n * W + lane] =
                    lane < nc ? Ap[(ch0 + lane) * np + n] : T(0);
              }
            }
            const int64_t bc = (b * kRoutes + k) * L * np;
            const Block<T> blk{
                u_r.data(), dt_r.data(), Bp + bc, Cp + bc, y_r.data(),
                sp ? sp + (b * kRoutes * dim + ch0) * num_chunks * np
                   : nullptr,
                nc};
            forward_block<T, kN>(blk, A_lanes.data(), L, N, np, chunk,
                                 tiles.data(), h_scratch.data());
            // y[pos_k[t], d] += y_k(t) + Dskip x: time outer, lanes inner,
            // so each step writes the block's nc adjacent channels (one
            // cache line) instead of nc lines L * dim apart
            T dskip[W];
            for (int lane = 0; lane < nc; ++lane) dskip[lane] = Dp[ch0 + lane];
            const T* yr = y_r.data();
            const T* ur = u_r.data();
            T* yb = yp + b * L * dim + c0;
            for (int64_t t = 0; t < L; ++t) {
              T* yo = yb + p[t] * dim;
              for (int lane = 0; lane < nc; ++lane) {
                yo[lane] += yr[lane * L + t] + dskip[lane] * ur[lane * L + t];
              }
            }
          }
        }
      });
    });
  });
  return {y, starts};
}

std::vector<at::Tensor> ss2d_scan_bwd(
    const at::Tensor& x_in, const at::Tensor& dts_in, const at::Tensor& A_in,
    const at::Tensor& B_in, const at::Tensor& C_in, const at::Tensor& D_in,
    const at::Tensor& bias_in, const at::Tensor& starts_in,
    const at::Tensor& dy_in, int64_t height, int64_t width, int64_t chunk) {
  const SS2DInputs in = prepare(x_in, dts_in, A_in, B_in, C_in, D_in,
                                bias_in, height, width, chunk);
  const int64_t batch = in.batch, dim = in.dim, L = in.length, N = in.N;
  const int64_t np = in.np, num_chunks = in.num_chunks;
  const int nv = in.nv;
  const at::Tensor dy = dy_in.to(in.x.scalar_type()).contiguous();
  const at::Tensor starts = starts_in.contiguous();
  TORCH_CHECK(dy.dim() == 3 && dy.size(0) == batch && dy.size(1) == L &&
                  dy.size(2) == dim,
              "ss2d_scan_bwd: dy must be (batch, H * W, D)");
  TORCH_CHECK(starts.dim() == 4 && starts.size(0) == batch &&
                  starts.size(1) == kRoutes * dim &&
                  starts.size(2) == num_chunks && starts.size(3) == np,
              "ss2d_scan_bwd: chunk starts do not match the inputs");
  const int64_t tasks_wanted = 4 * at::get_num_threads();
  const int64_t slices = std::max<int64_t>(
      1, std::min<int64_t>(dim, (tasks_wanted + batch - 1) / batch));
  const int64_t per_slice = (dim + slices - 1) / slices;
  at::Tensor dx = at::zeros_like(in.x);
  at::Tensor ddts = at::empty_like(in.dts);
  at::Tensor dA_part = at::zeros({batch, kRoutes * dim, np}, in.x.options());
  at::Tensor dD_part = at::zeros({batch, kRoutes * dim}, in.x.options());
  at::Tensor dbias_part = at::zeros_like(dD_part);
  at::Tensor dB_part =
      at::zeros({batch, slices, kRoutes, L, np}, in.x.options());
  at::Tensor dC_part = at::zeros_like(dB_part);
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "ss2d_scan_bwd", [&] {
    using T = scalar_t;
    using V = typename Simd<T>::V;
    const T* xp = in.x.data_ptr<T>();
    const T* dp = in.dts.data_ptr<T>();
    const T* Ap = in.A.data_ptr<T>();
    const T* Bp = in.Bt.data_ptr<T>();
    const T* Cp = in.Ct.data_ptr<T>();
    const T* Dp = in.Dskip.data_ptr<T>();
    const T* biasp = in.bias.data_ptr<T>();
    const T* dyp = dy.data_ptr<T>();
    const T* sp = starts.data_ptr<T>();
    T* dxp = dx.data_ptr<T>();
    T* ddp = ddts.data_ptr<T>();
    T* dAp = dA_part.data_ptr<T>();
    T* dDp = dD_part.data_ptr<T>();
    T* dbp = dbias_part.data_ptr<T>();
    T* dBp = dB_part.data_ptr<T>();
    T* dCp = dC_part.data_ptr<T>();
    const int64_t* pos = in.pos.data();
    with_vectors_per_state(nv, [&](auto nv_const) {
      constexpr int kNV = decltype(nv_const)::value;
      at::parallel_for(0, batch * slices, 1, [&](int64_t begin, int64_t end) {
        const int64_t rows = std::min(chunk, L);
        std::vector<V> hbuf(rows * nv), abuf(rows * nv);
        std::vector<V> scratch(kNV > 0 ? 0 : 2 * nv);
        // one channel of one route: map-order step sizes and sigmoids,
        // route-order u, dt, dy and the kernel's du, ddt
        std::vector<T> dt_map(L), sig_map(L), u_r(L), dt_r(L), dy_r(L),
            du_r(L), ddt_r(L);
        for (int64_t task = begin; task < end; ++task) {
          const int64_t b = task / slices, s = task % slices;
          const int64_t d_begin = s * per_slice;
          const int64_t d_end = std::min(dim, d_begin + per_slice);
          for (int64_t d = d_begin; d < d_end; ++d) {
            const T* xrow = xp + (b * dim + d) * L;
            T* dxrow = dxp + (b * dim + d) * L;
            for (int k = 0; k < kRoutes; ++k) {
              const int64_t* p = pos + k * L;
              const int64_t c = k * dim + d;  // channel of A, D, bias
              const int64_t row = ((b * kRoutes + k) * dim + d) * L;
              step_sizes<T>(dp + row, biasp[c], L, dt_map.data(),
                            sig_map.data());
              for (int64_t t = 0; t < L; ++t) {
                u_r[t] = xrow[p[t]];
                dt_r[t] = dt_map[p[t]];
                dy_r[t] = dyp[(b * L + p[t]) * dim + d];
              }
              const int64_t bc = (b * kRoutes + k) * L * np;
              const int64_t part = ((b * slices + s) * kRoutes + k) * L * np;
              const Channel<T> ch{u_r.data(), dt_r.data(), Ap + c * np,
                                  Bp + bc, Cp + bc};
              const ChannelGrads<T> gr{du_r.data(), ddt_r.data(),
                                       dAp + (b * kRoutes * dim + c) * np,
                                       dBp + part, dCp + part};
              backward_channel<T, kNV>(ch, dy_r.data(),
                                       sp + (b * kRoutes * dim + c) *
                                                num_chunks * np,
                                       gr, L, nv, chunk, hbuf.data(),
                                       abuf.data(), scratch.data());
              const T dskip = Dp[c];
              T dD = 0, dbias = 0;
              T* ddrow = ddp + row;
              for (int64_t t = 0; t < L; ++t) {
                const int64_t q = p[t];
                dxrow[q] += du_r[t] + dskip * dy_r[t];
                dD += u_r[t] * dy_r[t];
                const T dz = ddt_r[t] * sig_map[q];
                ddrow[q] = dz;
                dbias += dz;
              }
              dDp[b * kRoutes * dim + c] += dD;
              dbp[b * kRoutes * dim + c] += dbias;
            }
          }
        }
      });
    });
  });
  at::Tensor dA = dA_part.sum(0).narrow(1, 0, N);
  at::Tensor dB = from_route_rows(dB_part.sum(1).contiguous(), in.pos, N);
  at::Tensor dC = from_route_rows(dC_part.sum(1).contiguous(), in.pos, N);
  return {dx, ddts, dA, dB, dC, dD_part.sum(0), dbias_part.sum(0)};
}

}  // namespace densekit
