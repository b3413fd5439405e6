"""Fold BatchNorms into convolutions once the test checkpoint is loaded."""
from mmengine.hooks import Hook
from mmengine.logging import print_log

from densekit.models.utils.fuse_conv_bn import count_batchnorms, fuse_conv_bn
from densekit.registry import HOOKS


@HOOKS.register_module()
class FuseConvBNHook(Hook):
    """Apply :func:`densekit.models.utils.fuse_conv_bn.fuse_conv_bn` to the
    runner's model at ``before_test``, after mmengine has loaded
    ``load_from`` (folding first would leave the BatchNorm keys without a
    module). ``tools/test.py --fuse-conv-bn`` adds it.
    """
    priority = 'LOW'

    def before_test(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        before, _ = count_batchnorms(model)
        fuse_conv_bn(model.eval())
        after, _ = count_batchnorms(model)
        print_log(f'FuseConvBNHook: folded {before - after} of {before} '
                  'BatchNorms into their convolutions', logger='current')
