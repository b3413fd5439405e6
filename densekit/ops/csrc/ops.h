// Declarations of densekit's compiled CPU ops (bound in bindings.cpp).
#pragma once

#include <torch/extension.h>

#include <vector>

namespace densekit {

// selective_scan_cpu.cpp
std::vector<at::Tensor> selective_scan_fwd(const at::Tensor& u,
                                           const at::Tensor& dt,
                                           const at::Tensor& A,
                                           const at::Tensor& B,
                                           const at::Tensor& C,
                                           int64_t chunk, bool save_states);
std::vector<at::Tensor> selective_scan_bwd(
    const at::Tensor& u, const at::Tensor& dt, const at::Tensor& A,
    const at::Tensor& B, const at::Tensor& C, const at::Tensor& starts,
    const at::Tensor& dy, int64_t chunk);

// ss2d_scan_cpu.cpp
std::vector<at::Tensor> ss2d_scan_fwd(const at::Tensor& x,
                                      const at::Tensor& dts,
                                      const at::Tensor& A, const at::Tensor& B,
                                      const at::Tensor& C, const at::Tensor& D,
                                      const at::Tensor& delta_bias,
                                      int64_t height, int64_t width,
                                      int64_t chunk, bool save_states);
std::vector<at::Tensor> ss2d_scan_bwd(
    const at::Tensor& x, const at::Tensor& dts, const at::Tensor& A,
    const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
    const at::Tensor& delta_bias, const at::Tensor& starts,
    const at::Tensor& dy, int64_t height, int64_t width, int64_t chunk);

// roi_align_cpu.cpp
at::Tensor roi_align_fwd(const at::Tensor& input, const at::Tensor& rois,
                         int64_t pooled_height, int64_t pooled_width,
                         double spatial_scale, int64_t sampling_ratio,
                         bool aligned);
at::Tensor roi_align_bwd(const at::Tensor& grad_output,
                         const at::Tensor& rois, int64_t batch,
                         int64_t channels, int64_t height, int64_t width,
                         double spatial_scale, int64_t sampling_ratio,
                         bool aligned, int64_t max_block_samples);

}  // namespace densekit
