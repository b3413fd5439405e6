"""densekit: dense-prediction models on the OpenMMLab stack.

Importing densekit registers its safe checkpoint loader with mmengine (see
:mod:`densekit.utils.compat`); models, datasets and hooks register lazily
through the registry ``locations`` (see :mod:`densekit.registry`).
"""
from .utils.compat import register_safe_checkpoint_loader
from .version import __version__

register_safe_checkpoint_loader()

__all__ = ['__version__']
