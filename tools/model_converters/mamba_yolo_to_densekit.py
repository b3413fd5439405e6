"""Alias of ``tools/model_converters/convert.py mamba_yolo`` (the README
names this script): the same arguments and output (the old
``--unpickle-model`` is ``--unsafe-load``); see convert.py.

Example:
    python tools/model_converters/mamba_yolo_to_densekit.py \
        mamba_yolo_t_sd.pth work_dirs/mamba_yolo_t_densekit.pth \
        --config configs/det/mamba_yolo_t_coco.py
"""
import importlib.util
import os.path as osp
import sys


def main(argv=None) -> int:
    spec = importlib.util.spec_from_file_location(
        'densekit_convert_tool', osp.join(osp.dirname(osp.abspath(__file__)),
                                          'convert.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = ['--unsafe-load' if a == '--unpickle-model' else a for a in argv]
    return tool.main(['mamba_yolo', *argv])


if __name__ == '__main__':
    sys.exit(main())
