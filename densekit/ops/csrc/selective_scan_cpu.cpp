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
#include "selective_scan_kernels.h"
#include "simd.h"

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
