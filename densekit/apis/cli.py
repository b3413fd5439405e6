"""Command-line arguments every demo shares."""
import argparse

__all__ = ['add_runtime_args']


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend``, ``--fuse-conv-bn`` and ``--backend-model``: which
    runtime runs the model forward (the inferencers' ``backend``,
    ``fuse_conv_bn`` and ``backend_model`` arguments)."""
    parser.add_argument(
        '--backend', default='pytorch',
        help='runtime of the model forward: pytorch, onnxruntime or '
        'openvino (an exported --backend-model, else the model exported on '
        'the fly into ~/.cache/densekit/deploy); post-processing is the '
        'same, so are the results')
    parser.add_argument(
        '--fuse-conv-bn', action=argparse.BooleanOptionalAction,
        default=True,
        help='fold BatchNorms into the convolutions (PyTorch backend; the '
        'same results to float round-off). Defaults to on')
    parser.add_argument(
        '--backend-model', default=None,
        help='a model file written by tools/deploy/export.py')
