// RoIAlign on the CPU, average pooling: forward and backward kernels.
//
// He, Gkioxari, Dollar and Girshick, "Mask R-CNN", ICCV 2017, Sec. 3
// ("RoIAlign"): each of the pooled_height x pooled_width bins of a RoI
// averages grid_h x grid_w bilinearly interpolated points, spaced evenly in
// the bin. The arithmetic is mmcv's `roi_align` with pool_mode='avg' (the
// op mmdet's RoI extractors call), so the two agree to rounding:
//   * `aligned` shifts the RoI by -0.5 px (pixel centers at .5), else the
//     RoI is at least 1 x 1;
//   * sampling_ratio <= 0 uses ceil(roi_size / pooled_size) points per bin
//     along each axis;
//   * a point outside [-1, H] x [-1, W] contributes 0; coordinates in
//     [-1, 0] are clamped to 0, past the last row / column to it.
//
// Layout and parallelism (at::parallel_for, torch's intra-op threads). The
// bilinear neighbours and weights of a RoI's points (its "samples") depend
// on the RoI only, not on the channel. The forward pass runs RoIs in
// parallel: each computes its samples once, then every channel reads them.
// The backward pass scatters into the input gradient, where RoIs of one
// image collide; it computes the samples of a block of RoIs (in parallel,
// the block bounded in memory), then runs channels in parallel: a channel's
// (H, W) gradient plane belongs to one thread, which walks the block's RoIs
// in order, so no two threads write the same memory and the sums are
// deterministic. (mmcv's CPU kernels run on one thread and recompute the
// weights for every channel in the backward pass.)
#include "ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace densekit {
namespace {

// One bilinear point: offsets of its four neighbours in an H x W plane and
// their weights; `valid` is false for points outside the map (weights 0,
// offsets 0, so the forward pass may read them unconditionally).
template <typename T>
struct Sample {
  int32_t pos[4];
  T w[4];
  bool valid;
};

// Where a RoI's bins and points lie on its feature map.
template <typename T>
struct RoiGrid {
  int64_t batch_index;
  T start_h, start_w, bin_h, bin_w;
  int64_t grid_h, grid_w;  // points per bin along y and x (>= 0)

  int64_t samples_per_bin() const { return grid_h * grid_w; }
  // the divisor of a bin's sum (mmcv: max(grid_h * grid_w, 1))
  T count() const { return static_cast<T>(std::max<int64_t>(
      samples_per_bin(), 1)); }
};

template <typename T>
RoiGrid<T> roi_grid(const T* roi, T spatial_scale, int64_t pooled_height,
                    int64_t pooled_width, int64_t sampling_ratio,
                    bool aligned) {
  const T offset = aligned ? static_cast<T>(0.5) : static_cast<T>(0);
  RoiGrid<T> g;
  g.batch_index = static_cast<int64_t>(roi[0]);
  g.start_w = roi[1] * spatial_scale - offset;
  g.start_h = roi[2] * spatial_scale - offset;
  T roi_width = roi[3] * spatial_scale - offset - g.start_w;
  T roi_height = roi[4] * spatial_scale - offset - g.start_h;
  if (!aligned) {
    roi_width = std::max(roi_width, static_cast<T>(1));
    roi_height = std::max(roi_height, static_cast<T>(1));
  }
  g.bin_h = roi_height / static_cast<T>(pooled_height);
  g.bin_w = roi_width / static_cast<T>(pooled_width);
  if (sampling_ratio > 0) {
    g.grid_h = g.grid_w = sampling_ratio;
  } else {  // adaptive (a RoI of size 0 gets no points)
    g.grid_h = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(
        static_cast<float>(roi_height / static_cast<T>(pooled_height)))));
    g.grid_w = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(
        static_cast<float>(roi_width / static_cast<T>(pooled_width)))));
  }
  return g;
}

template <typename T>
Sample<T> bilinear_sample(T y, T x, int64_t height, int64_t width) {
  Sample<T> s;
  if (y < static_cast<T>(-1) || y > static_cast<T>(height) ||
      x < static_cast<T>(-1) || x > static_cast<T>(width)) {
    for (int i = 0; i < 4; ++i) {
      s.pos[i] = 0;
      s.w[i] = static_cast<T>(0);
    }
    s.valid = false;
    return s;
  }
  y = std::max(y, static_cast<T>(0));
  x = std::max(x, static_cast<T>(0));
  int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x);
  int64_t y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<T>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<T>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - static_cast<T>(y_low), lx = x - static_cast<T>(x_low);
  const T hy = static_cast<T>(1) - ly, hx = static_cast<T>(1) - lx;
  s.pos[0] = static_cast<int32_t>(y_low * width + x_low);
  s.pos[1] = static_cast<int32_t>(y_low * width + x_high);
  s.pos[2] = static_cast<int32_t>(y_high * width + x_low);
  s.pos[3] = static_cast<int32_t>(y_high * width + x_high);
  s.w[0] = hy * hx;
  s.w[1] = hy * lx;
  s.w[2] = ly * hx;
  s.w[3] = ly * lx;
  s.valid = true;
  return s;
}

// The RoI's samples, bin by bin (row-major bins, row-major points in a bin).
template <typename T>
void fill_samples(const RoiGrid<T>& g, int64_t height, int64_t width,
                  int64_t pooled_height, int64_t pooled_width,
                  Sample<T>* out) {
  int64_t k = 0;
  for (int64_t ph = 0; ph < pooled_height; ++ph) {
    for (int64_t pw = 0; pw < pooled_width; ++pw) {
      for (int64_t iy = 0; iy < g.grid_h; ++iy) {
        const T y = g.start_h + static_cast<T>(ph) * g.bin_h +
                    static_cast<T>(iy + .5f) * g.bin_h /
                        static_cast<T>(g.grid_h);
        for (int64_t ix = 0; ix < g.grid_w; ++ix) {
          const T x = g.start_w + static_cast<T>(pw) * g.bin_w +
                      static_cast<T>(ix + .5f) * g.bin_w /
                          static_cast<T>(g.grid_w);
          out[k++] = bilinear_sample<T>(y, x, height, width);
        }
      }
    }
  }
}

void check_rois(const at::Tensor& rois, const at::Tensor& like,
                const char* op) {
  TORCH_CHECK(rois.device().is_cpu(), op, ": rois must be a CPU tensor");
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
              ": rois must be (R, 5) rows (batch_index, x1, y1, x2, y2), "
              "got shape ", rois.sizes());
  TORCH_CHECK(rois.scalar_type() == like.scalar_type(), op,
              ": rois must have the features' dtype (", like.scalar_type(),
              "), got ", rois.scalar_type());
}

// Every RoI's grid; raises on a batch index outside [0, batch).
template <typename T>
std::vector<RoiGrid<T>> roi_grids(const at::Tensor& rois, int64_t batch,
                                  int64_t pooled_height, int64_t pooled_width,
                                  double spatial_scale, int64_t sampling_ratio,
                                  bool aligned, const char* op) {
  const int64_t num_rois = rois.size(0);
  const T* data = rois.data_ptr<T>();
  std::vector<RoiGrid<T>> grids(num_rois);
  for (int64_t r = 0; r < num_rois; ++r) {
    const T b = data[r * 5];
    TORCH_CHECK(b >= 0 && b < static_cast<T>(batch) &&
                    b == std::floor(b),
                op, ": rois[", r, ", 0] = ", b, " is not a batch index in "
                "[0, ", batch, ")");
    grids[r] = roi_grid<T>(data + r * 5, static_cast<T>(spatial_scale),
                           pooled_height, pooled_width, sampling_ratio,
                           aligned);
    // (mmcv asserts the same; unaligned RoIs are at least 1 x 1)
    TORCH_CHECK(!aligned || (grids[r].bin_h >= 0 && grids[r].bin_w >= 0),
                op, ": rois[", r, "] = (", b, ", ", data[r * 5 + 1], ", ",
                data[r * 5 + 2], ", ", data[r * 5 + 3], ", ",
                data[r * 5 + 4], ") has x2 < x1 or y2 < y1");
  }
  return grids;
}

}  // namespace

// (R, C, pooled_height, pooled_width) average of each bin's points.
at::Tensor roi_align_fwd(const at::Tensor& input_in, const at::Tensor& rois_in,
                         int64_t pooled_height, int64_t pooled_width,
                         double spatial_scale, int64_t sampling_ratio,
                         bool aligned) {
  TORCH_CHECK(input_in.device().is_cpu(),
              "roi_align_fwd: input must be a CPU tensor");
  TORCH_CHECK(input_in.dim() == 4, "roi_align_fwd: input must be (N, C, H, "
              "W), got shape ", input_in.sizes());
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0,
              "roi_align_fwd: output size must be positive, got (",
              pooled_height, ", ", pooled_width, ")");
  check_rois(rois_in, input_in, "roi_align_fwd");
  const at::Tensor input = input_in.contiguous();
  const at::Tensor rois = rois_in.contiguous();
  const int64_t batch = input.size(0), channels = input.size(1),
                height = input.size(2), width = input.size(3);
  TORCH_CHECK(height * width < std::numeric_limits<int32_t>::max(),
              "roi_align_fwd: feature map too large (", height, " x ", width,
              ")");
  const int64_t num_rois = rois.size(0);
  at::Tensor output = at::zeros({num_rois, channels, pooled_height,
                                 pooled_width}, input.options());
  if (num_rois == 0 || channels == 0) return output;
  const int64_t bins = pooled_height * pooled_width;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_fwd", [&] {
    const auto grids = roi_grids<scalar_t>(
        rois, batch, pooled_height, pooled_width, spatial_scale,
        sampling_ratio, aligned, "roi_align_fwd");
    const scalar_t* in = input.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
      std::vector<Sample<scalar_t>> samples;
      for (int64_t r = begin; r < end; ++r) {
        const RoiGrid<scalar_t>& g = grids[r];
        const int64_t per_bin = g.samples_per_bin();
        samples.resize(bins * per_bin);
        fill_samples<scalar_t>(g, height, width, pooled_height, pooled_width,
                               samples.data());
        const scalar_t count = g.count();
        for (int64_t c = 0; c < channels; ++c) {
          const scalar_t* plane =
              in + (g.batch_index * channels + c) * height * width;
          scalar_t* out_bins = out + (r * channels + c) * bins;
          const Sample<scalar_t>* s = samples.data();
          for (int64_t bin = 0; bin < bins; ++bin) {
            scalar_t sum = 0;
            for (int64_t k = 0; k < per_bin; ++k, ++s) {
              sum += s->w[0] * plane[s->pos[0]] + s->w[1] * plane[s->pos[1]] +
                     s->w[2] * plane[s->pos[2]] + s->w[3] * plane[s->pos[3]];
            }
            out_bins[bin] = sum / count;
          }
        }
      }
    });
  });
  return output;
}

// (batch, channels, height, width) gradient of the input features. RoIs
// are taken in blocks of at most max_block_samples samples (at least one
// RoI; 36 bytes a sample in float32).
at::Tensor roi_align_bwd(const at::Tensor& grad_output_in,
                         const at::Tensor& rois_in, int64_t batch,
                         int64_t channels, int64_t height, int64_t width,
                         double spatial_scale, int64_t sampling_ratio,
                         bool aligned, int64_t max_block_samples) {
  TORCH_CHECK(grad_output_in.device().is_cpu(),
              "roi_align_bwd: grad_output must be a CPU tensor");
  check_rois(rois_in, grad_output_in, "roi_align_bwd");
  const int64_t num_rois = rois_in.size(0);
  TORCH_CHECK(grad_output_in.dim() == 4 &&
                  grad_output_in.size(0) == num_rois &&
                  grad_output_in.size(1) == channels,
              "roi_align_bwd: grad_output must be (R, C, PH, PW) with R = ",
              num_rois, " and C = ", channels, ", got shape ",
              grad_output_in.sizes());
  TORCH_CHECK(height * width < std::numeric_limits<int32_t>::max(),
              "roi_align_bwd: feature map too large (", height, " x ", width,
              ")");
  const at::Tensor grad_output = grad_output_in.contiguous();
  const at::Tensor rois = rois_in.contiguous();
  const int64_t pooled_height = grad_output.size(2),
                pooled_width = grad_output.size(3);
  const int64_t bins = pooled_height * pooled_width;
  at::Tensor grad_input = at::zeros({batch, channels, height, width},
                                    grad_output.options());
  if (num_rois == 0 || channels == 0) return grad_input;
  AT_DISPATCH_FLOATING_TYPES(grad_output.scalar_type(), "roi_align_bwd", [&] {
    const auto grids = roi_grids<scalar_t>(
        rois, batch, pooled_height, pooled_width, spatial_scale,
        sampling_ratio, aligned, "roi_align_bwd");
    const scalar_t* gout = grad_output.data_ptr<scalar_t>();
    scalar_t* gin = grad_input.data_ptr<scalar_t>();
    std::vector<int64_t> first(num_rois + 1);  // sample offsets in a block
    std::vector<Sample<scalar_t>> samples;
    int64_t block_begin = 0;
    while (block_begin < num_rois) {
      // the block: RoIs [block_begin, block_end), at least one
      int64_t block_end = block_begin, total = 0;
      while (block_end < num_rois) {
        const int64_t n = bins * grids[block_end].samples_per_bin();
        if (block_end > block_begin && total + n > max_block_samples) {
          break;
        }
        first[block_end - block_begin] = total;
        total += n;
        ++block_end;
      }
      first[block_end - block_begin] = total;
      samples.resize(total);
      at::parallel_for(block_begin, block_end, 1,
                       [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          fill_samples<scalar_t>(grids[r], height, width, pooled_height,
                                 pooled_width,
                                 samples.data() + first[r - block_begin]);
        }
      });
      at::parallel_for(0, channels, 1, [&](int64_t c_begin, int64_t c_end) {
        for (int64_t c = c_begin; c < c_end; ++c) {
          for (int64_t r = block_begin; r < block_end; ++r) {
            const RoiGrid<scalar_t>& g = grids[r];
            const int64_t per_bin = g.samples_per_bin();
            const scalar_t count = g.count();
            scalar_t* plane =
                gin + (g.batch_index * channels + c) * height * width;
            const scalar_t* g_bins = gout + (r * channels + c) * bins;
            const Sample<scalar_t>* s =
                samples.data() + first[r - block_begin];
            for (int64_t bin = 0; bin < bins; ++bin) {
              const scalar_t top = g_bins[bin];
              for (int64_t k = 0; k < per_bin; ++k, ++s) {
                if (!s->valid) continue;
                plane[s->pos[0]] += top * s->w[0] / count;
                plane[s->pos[1]] += top * s->w[1] / count;
                plane[s->pos[2]] += top * s->w[2] / count;
                plane[s->pos[3]] += top * s->w[3] / count;
              }
            }
          }
        }
      });
      block_begin = block_end;
    }
  });
  return grad_input;
}

}  // namespace densekit
