"""Export to ONNX / OpenVINO IR and run exported models (issue 23).

* :mod:`.exporter`: per-task wrappers (what the graph computes), the
  export itself (atomic, one-line errors naming the module);
* :mod:`.runtime`: ONNX Runtime / OpenVINO sessions behind one call;
* :mod:`.backend`: a model's forward through a runtime, for the
  inferencers' ``backend=`` argument.

``onnx``, ``onnxruntime`` and ``openvino`` are optional
(``requirements/deploy.txt``); they are imported when used.
"""
from .backend import (RuntimeForward, attach_runtime, make_runtime,
                      postprocessed_instances)
from .exporter import (FORMATS, ExportError, build_export_spec, export_model,
                       load_model, model_task, read_meta)
from .runtime import BACKENDS, RuntimeSession, check_backend

__all__ = [
    'BACKENDS', 'FORMATS', 'ExportError', 'RuntimeForward', 'RuntimeSession',
    'attach_runtime', 'build_export_spec', 'check_backend', 'export_model',
    'load_model', 'make_runtime', 'model_task', 'postprocessed_instances',
    'read_meta'
]
