"""Command-line arguments every demo shares."""
import argparse

__all__ = ['add_runtime_args', 'add_label_args']


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


def add_label_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--multi-label``: every class of a box above the threshold (as
    validation counts them) instead of its best class (as ultralytics
    predicts); the detection inferencer's ``multi_label``."""
    parser.add_argument(
        '--multi-label', action='store_true',
        help='detection (YOLO heads): draw every class of a box scoring '
        'above the threshold, as validation counts them; by default each '
        'box shows its best class, as ultralytics predicts')
