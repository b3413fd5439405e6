"""densekit.WideResNet: torchvision's wide_resnet50_2 / 101_2 layout (built
on the meta device: no weights are allocated)."""
import pytest
import torch

from densekit.models.backbones.wide_resnet import WideResNet


def torchvision_wide_resnet_shapes(blocks, width_per_group=128):
    """{key: shape} of torchvision's ``ResNet(Bottleneck, blocks,
    width_per_group=...)`` without ``fc``, written from its definition
    (conv1 7x7 -> bn1 -> layer{i}.{j}.conv1/bn1/conv2/bn2/conv3/bn3 and
    layer{i}.0.downsample.0/1), BatchNorm counters left out."""
    shapes = {'conv1.weight': (64, 3, 7, 7)}

    def bn(name, c):
        for p in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{name}.{p}'] = (c, )

    bn('bn1', 64)
    inplanes = 64
    for i, num in enumerate(blocks):
        planes = 64 * 2**i
        width = planes * width_per_group // 64
        for j in range(num):
            name = f'layer{i + 1}.{j}'
            shapes[f'{name}.conv1.weight'] = (width, inplanes, 1, 1)
            bn(f'{name}.bn1', width)
            shapes[f'{name}.conv2.weight'] = (width, width, 3, 3)
            bn(f'{name}.bn2', width)
            shapes[f'{name}.conv3.weight'] = (planes * 4, width, 1, 1)
            bn(f'{name}.bn3', planes * 4)
            if j == 0:
                shapes[f'{name}.downsample.0.weight'] = (planes * 4,
                                                         inplanes, 1, 1)
                bn(f'{name}.downsample.1', planes * 4)
            inplanes = planes * 4
    return shapes


@pytest.mark.parametrize('depth,blocks,params', [
    (50, (3, 4, 6, 3), 66_834_240),  # torchvision 68,883,240 - fc
    (101, (3, 4, 23, 3), 124_837_696),  # torchvision 126,886,696 - fc
])
def test_torchvision_layout_and_parameter_count(depth, blocks, params):
    with torch.device('meta'):
        model = WideResNet(depth=depth)
    print(f'WRN-{depth}-2 parameters:',
          sum(p.numel() for p in model.parameters()))
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.layer1[0].conv2.weight.shape[0] == 2 * 64  # 2 x planes
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.endswith('num_batches_tracked')}
    assert ours == torchvision_wide_resnet_shapes(blocks)


def test_outputs_match_feature_info():
    with torch.device('meta'):
        model = WideResNet(depth=50, out_indices=(0, 1, 2, 3))
        model.eval()
        outs = model(torch.empty(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (info['channels'], 64 // info['stride'], 64 // info['stride'])
        for info in model.feature_info]
    assert model.out_indices == (0, 1, 2, 3)
    assert [i['stride'] for i in model.feature_info] == [4, 8, 16, 32]


def test_registry_and_bad_args():
    from densekit.registry import MODELS
    with torch.device('meta'):
        model = MODELS.build(dict(type='densekit.WideResNet', depth=50,
                                  num_stages=3, strides=(1, 2, 2),
                                  dilations=(1, 1, 1), out_indices=(1, 2)))
    assert isinstance(model, WideResNet) and not hasattr(model, 'layer4')
    with pytest.raises(KeyError, match='invalid depth 18'):
        WideResNet(depth=18)
    with pytest.raises(ValueError, match='does not support dcn or plugins'):
        with torch.device('meta'):
            WideResNet(depth=50, plugins=[dict(
                cfg=dict(type='ContextBlock', ratio=1. / 4),
                position='after_conv3')])
