"""Alias of ``tools/model_converters/convert.py resnet_vit`` (the configs and
the docs name this script): the same arguments and output; see convert.py.

Example:
    python tools/model_converters/resnet_vit_to_densekit.py SRC DST \
        [--config CFG]
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
    return tool.main(['resnet_vit', *(sys.argv[1:] if argv is None else argv)])


if __name__ == '__main__':
    sys.exit(main())
