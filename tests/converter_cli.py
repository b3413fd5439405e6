"""``tools/model_converters/convert.py`` loaded as a module, for the
converter tests of every family."""
import importlib.util
import os.path as osp
from functools import partial

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONVERT_PY = osp.join(ROOT, 'tools', 'model_converters', 'convert.py')


def load_convert_tool():
    """The convert.py module (``main(argv) -> exit status``)."""
    spec = importlib.util.spec_from_file_location('densekit_convert_tool',
                                                  CONVERT_PY)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _run(tool, name, argv):
    return tool.main([name, *map(str, argv)])


def convert_cli(name: str):
    """``convert(argv)`` = ``convert.py NAME *argv``, returning the exit
    status."""
    return partial(_run, load_convert_tool(), name)
