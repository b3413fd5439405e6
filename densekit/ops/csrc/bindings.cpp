// Python bindings of densekit's compiled CPU ops (densekit._ext).
#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "densekit compiled ops (CPU selective scan, SS2D scan, RoIAlign)";
  m.def("selective_scan_fwd", &densekit::selective_scan_fwd,
        "S6 selective scan forward (CPU): y and per-chunk start states",
        py::arg("u"), py::arg("dt"), py::arg("A"), py::arg("B"),
        py::arg("C"), py::arg("chunk"), py::arg("save_states"));
  m.def("selective_scan_bwd", &densekit::selective_scan_bwd,
        "S6 selective scan backward (CPU): du, ddt, dA, dB, dC",
        py::arg("u"), py::arg("dt"), py::arg("A"), py::arg("B"),
        py::arg("C"), py::arg("starts"), py::arg("dy"), py::arg("chunk"));
  m.def("ss2d_scan_fwd", &densekit::ss2d_scan_fwd,
        "SS2D four-route selective scan forward (CPU): y (b, L, D) summed "
        "over routes with bias + softplus and the D skip, chunk starts",
        py::arg("x"), py::arg("dts"), py::arg("A"), py::arg("B"),
        py::arg("C"), py::arg("D"), py::arg("delta_bias"), py::arg("height"),
        py::arg("width"), py::arg("chunk"), py::arg("save_states"));
  m.def("ss2d_scan_bwd", &densekit::ss2d_scan_bwd,
        "SS2D four-route selective scan backward (CPU): dx, ddelta, dA, dB, "
        "dC, dD, ddelta_bias",
        py::arg("x"), py::arg("dts"), py::arg("A"), py::arg("B"),
        py::arg("C"), py::arg("D"), py::arg("delta_bias"), py::arg("starts"),
        py::arg("dy"), py::arg("height"), py::arg("width"), py::arg("chunk"));
  m.def("roi_align_fwd", &densekit::roi_align_fwd,
        "RoIAlign forward, average pooling (CPU): (R, C, PH, PW)",
        py::arg("input"), py::arg("rois"), py::arg("pooled_height"),
        py::arg("pooled_width"), py::arg("spatial_scale"),
        py::arg("sampling_ratio"), py::arg("aligned"));
  m.def("roi_align_bwd", &densekit::roi_align_bwd,
        "RoIAlign backward, average pooling (CPU): (N, C, H, W) input grad",
        py::arg("grad_output"), py::arg("rois"), py::arg("batch"),
        py::arg("channels"), py::arg("height"), py::arg("width"),
        py::arg("spatial_scale"), py::arg("sampling_ratio"),
        py::arg("aligned"), py::arg("max_block_samples") = int64_t(1) << 21);
}
