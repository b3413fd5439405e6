"""densekit: dense-prediction models on the OpenMMLab stack.

Importing densekit changes nothing in mmengine: models, datasets and hooks
register lazily through the registry ``locations`` (see
:mod:`densekit.registry`), and the mmengine compatibility patches are
applied by densekit's tools and configs (see :mod:`densekit.utils.compat`).
"""
from .version import __version__

__all__ = ['__version__']
