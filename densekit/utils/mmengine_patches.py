"""Importing this module applies densekit's mmengine patches
(:func:`densekit.utils.compat.install_mmengine_compat`): the base runtime
configs list it in ``custom_imports``, so a densekit config gets them under
densekit's tools and under mmdet's/mmseg's own. Nothing else imports it.
"""
from .compat import install_mmengine_compat

install_mmengine_compat()
