"""ONNX Runtime and OpenVINO sessions behind one call.

:class:`RuntimeSession` loads an exported model (``.onnx`` for ONNX
Runtime; ``.xml`` OpenVINO IR or ``.onnx`` for OpenVINO) and runs it on
numpy arrays or CPU tensors::

    session = RuntimeSession('yolov8_n.onnx', backend='onnxruntime',
                             num_threads=2)
    outputs = session({'input': image})   # or session(image)
    outputs['cls_scores_0'].shape         # dict name -> np.ndarray

Both runtimes compute in float32 on the CPU here: OpenVINO's CPU plugin
would otherwise pick bfloat16 on CPUs with native bfloat16 (AVX-512 BF16 /
AMX), and its outputs would then differ from PyTorch's by ~1% (the parity
tests need 1e-4).

``onnxruntime`` and ``openvino`` are optional (``requirements/deploy.txt``);
a missing one raises ``ImportError`` with the install command when a
session of that backend is created.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

BACKENDS = ('pytorch', 'onnxruntime', 'openvino')
RUNTIME_BACKENDS = ('onnxruntime', 'openvino')
INSTALL_HINT = 'pip install -r requirements/deploy.txt'

ArrayLike = Union[np.ndarray, 'torch.Tensor']  # noqa: F821


def check_backend(backend: str, allowed: Sequence[str] = BACKENDS) -> str:
    """``backend`` normalised, or ``ValueError`` listing ``allowed``."""
    name = str(backend).strip().lower()
    aliases = {'ort': 'onnxruntime', 'ov': 'openvino', 'torch': 'pytorch'}
    name = aliases.get(name, name)
    if name not in allowed:
        raise ValueError(f'backend must be one of {tuple(allowed)}, but got '
                         f'{backend!r}')
    return name


def import_runtime(backend: str):
    """The runtime module of ``backend``, or ``ImportError`` naming the
    install command."""
    backend = check_backend(backend, RUNTIME_BACKENDS)
    try:
        if backend == 'onnxruntime':
            import onnxruntime
            return onnxruntime
        import openvino
        return openvino
    except ImportError as e:
        raise ImportError(f'backend {backend!r} needs the {backend} package, '
                          f'which does not import ({e}); {INSTALL_HINT}'
                          ) from e


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    detach = getattr(x, 'detach', None)
    if detach is not None:  # a torch tensor
        return detach().cpu().numpy()
    return np.asarray(x)


def _port_name(port) -> str:
    """An OpenVINO port's name: the file's tensor name (one of its
    names, sorted, so the choice is stable)."""
    names = sorted(port.get_names())
    return names[0] if names else port.get_any_name()


class RuntimeSession:
    """An exported model in ONNX Runtime or OpenVINO (CPU, float32).

    Args:
        model_path (str): ``.onnx`` (either backend) or ``.xml`` (OpenVINO
            IR, with its ``.bin`` beside it).
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
        num_threads (int, optional): Intra-op threads; None: the runtime's
            default (all cores).

    Attributes:
        input_names (list[str]): In graph order.
        output_names (list[str]): In graph order.
    """

    def __init__(self, model_path: Union[str, os.PathLike],
                 backend: str = 'onnxruntime',
                 num_threads: Optional[int] = None) -> None:
        model_path = os.fspath(model_path)
        self.backend = check_backend(backend, RUNTIME_BACKENDS)
        if not osp.isfile(model_path):
            raise FileNotFoundError(
                f'RuntimeSession: model file {model_path} does not exist')
        ext = osp.splitext(model_path)[1].lower()
        allowed = ('.onnx', ) if self.backend == 'onnxruntime' else \
            ('.onnx', '.xml')
        if ext not in allowed:
            raise ValueError(f'RuntimeSession: backend {self.backend!r} loads '
                             f'{allowed} files, but got {model_path}')
        if num_threads is not None and (not isinstance(num_threads, int)
                                        or num_threads < 1):
            raise ValueError('RuntimeSession: num_threads must be a positive '
                             f'int or None, but got {num_threads!r}')
        self.model_path = model_path
        self.num_threads = num_threads
        if self.backend == 'onnxruntime':
            self._init_ort()
        else:
            self._init_openvino()

    def _init_ort(self) -> None:
        ort = import_runtime('onnxruntime')
        options = ort.SessionOptions()
        if self.num_threads is not None:
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = \
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            self.model_path, options, providers=['CPUExecutionProvider'])
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    def _init_openvino(self) -> None:
        ov = import_runtime('openvino')
        core = ov.Core()
        config = {'INFERENCE_PRECISION_HINT': 'f32',
                  'PERFORMANCE_HINT': 'LATENCY', 'NUM_STREAMS': '1'}
        if self.num_threads is not None:
            config['INFERENCE_NUM_THREADS'] = str(self.num_threads)
        model = core.read_model(self.model_path)
        self._compiled = core.compile_model(model, 'CPU', config)
        self._request = self._compiled.create_infer_request()
        # the names of the file: compiling merges tensor names (an input
        # and the identity Cast after it), so the compiled ports' names
        # are ambiguous; ports keep the file's order
        self.input_names = [_port_name(i) for i in model.inputs]
        self.output_names = [_port_name(o) for o in model.outputs]

    def _feeds(self, inputs) -> Dict[str, np.ndarray]:
        if not isinstance(inputs, Mapping):
            inputs = list(inputs) if isinstance(inputs, (list, tuple)) \
                else [inputs]
            if len(inputs) != len(self.input_names):
                raise ValueError(
                    f'RuntimeSession: {self.model_path} takes inputs '
                    f'{self.input_names}, but got {len(inputs)} array(s)')
            inputs = dict(zip(self.input_names, inputs))
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f'RuntimeSession: missing inputs {missing} of '
                             f'{self.model_path} (takes {self.input_names})')
        return {n: np.ascontiguousarray(_to_numpy(inputs[n]))
                for n in self.input_names}

    def __call__(self, inputs) -> 'OrderedDict[str, np.ndarray]':
        """Run the model.

        Args:
            inputs (dict | array | list): ``{input name: array}``, one array
                (single-input models) or arrays in :attr:`input_names`
                order; numpy arrays or CPU tensors.

        Returns:
            OrderedDict[str, np.ndarray]: Outputs in :attr:`output_names`
            order.
        """
        feeds = self._feeds(inputs)
        if self.backend == 'onnxruntime':
            outs = self._session.run(self.output_names, feeds)
        else:
            result = self._request.infer(
                {i: feeds[n] for i, n in enumerate(self.input_names)})
            outs = [np.array(result[o], copy=True)
                    for o in self._compiled.outputs]
        return OrderedDict(zip(self.output_names, outs))
