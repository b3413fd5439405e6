"""Pretrained checkpoints: one unwrapping rule, and mismatches reported
and refused instead of silently training from scratch."""
import pytest
import torch

from densekit.models.backbones import EdgeNeXt
from densekit.models.utils import unwrap_state_dict


def save(tmp_path, state_dict, name='ckpt.pth'):
    path = str(tmp_path / name)
    torch.save(dict(state_dict=state_dict, meta={}), path)
    return path


def pretrained(path, **kwargs):
    return dict(type='Pretrained', checkpoint=path, **kwargs)


def test_unwrap_layouts():
    sd = {'a.weight': torch.zeros(1)}
    assert unwrap_state_dict(sd, 'x') == sd
    assert unwrap_state_dict({'state_dict': sd}, 'x') == sd
    assert unwrap_state_dict({'model': {'module.a.weight': sd['a.weight']}},
                             'x') == sd
    assert unwrap_state_dict({'model_ema': sd, 'model': {}}, 'x',
                             ema_key='model_ema') == sd
    with pytest.raises(KeyError, match="no 'model_ema'"):
        unwrap_state_dict({'model': sd}, 'x', ema_key='model_ema')
    with pytest.raises(TypeError, match='x expects a state dict'):
        unwrap_state_dict([1, 2], 'x')


def test_a_classification_checkpoint_without_output_norms_loads(tmp_path):
    torch.manual_seed(0)
    source = EdgeNeXt(arch='xxs')
    state = {k: v for k, v in source.state_dict().items()
             if not k.startswith('norm')}
    model = EdgeNeXt(arch='xxs', init_cfg=pretrained(save(tmp_path, state)))
    model.init_weights()
    for key in [k for k in state if k.endswith('weight')][-3:]:
        assert torch.equal(model.state_dict()[key], source.state_dict()[key])


def test_missing_weights_are_refused_and_can_be_allowed(tmp_path):
    state = EdgeNeXt(arch='xxs').state_dict()
    dropped = [k for k in state if k.startswith('stages.3.')]
    partial = {k: v for k, v in state.items() if k not in dropped}
    path = save(tmp_path, partial)
    with pytest.raises(ValueError, match=rf'ckpt\.pth lacks {len(dropped)} '
                       'of the'):
        EdgeNeXt(arch='xxs', init_cfg=pretrained(path)).init_weights()
    EdgeNeXt(arch='xxs', init_cfg=pretrained(
        path, allow_missing=[r'stages\.3\.'])).init_weights()
    EdgeNeXt(arch='xxs', init_cfg=pretrained(
        path, max_missing=len(dropped))).init_weights()


def test_another_architecture_is_refused(tmp_path):
    path = save(tmp_path, EdgeNeXt(arch='xs').state_dict(), 'xs.pth')
    with pytest.raises(ValueError, match='xs.pth has weights of other '
                       'shapes'):
        EdgeNeXt(arch='xxs', init_cfg=pretrained(path)).init_weights()
    unrelated = save(tmp_path, {'fc.weight': torch.zeros(2, 2)}, 'other.pth')
    with pytest.raises(ValueError, match='other.pth lacks'):
        EdgeNeXt(arch='xxs', init_cfg=pretrained(
            unrelated, max_missing=10**6)).init_weights()
