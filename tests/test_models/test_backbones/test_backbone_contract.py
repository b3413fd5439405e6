"""What every densekit backbone promises through ``BaseBackbone``, checked
on each row of ``backbone_cases.BACKBONES``: ``frozen_stages`` (stages and
their output norms in eval mode without gradients, the rest training, an
out-of-range value refused), ``norm_eval``, and stochastic depth (drop-path
rates rising linearly to ``drop_path_rate``, off in eval mode)."""
import pytest
import torch
from torch import nn

from tests.test_models.backbone_cases import BACKBONES

SIZE = 64
#: backbones without stochastic depth (YOLOv8's CSP-Darknet has none)
NO_DROP_PATH = ('YOLOv8CSPDarknet', )
#: arguments the drop-path checks need beyond the row's: enough blocks to
#: see a linear rise, layer scale 1 so a dropped branch changes the output
DROP_PATH_ARGS = {
    'EdgeNeXt': dict(layer_scale_init_value=1.0),
    'HorNet': dict(layer_scale_init_value=1.0),
    'ResNetViT': dict(num_layers=3),
}


def build(name, **kwargs):
    import densekit.models  # noqa: F401  (registers the backbones)
    from densekit.registry import MODELS
    return MODELS.build(dict(type=f'densekit.{name}', **{
        **BACKBONES[name], **kwargs}))


def _bns(model):
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_frozen_stages(name):
    model = build(name, frozen_stages=1)
    model.init_weights()
    model.train()
    for i, stage in enumerate(model.stages):
        frozen = i <= 1
        for module in (stage, getattr(model, f'norm{i}', None)):
            if module is None:
                continue
            assert all(m.training is not frozen for m in module.modules())
            assert all(p.requires_grad is not frozen
                       for p in module.parameters())
    frozen_stats = [(bn, bn.running_mean.clone())
                    for i in (0, 1) for bn in _bns(model.stages[i])]
    feats = model(torch.rand(2, 3, SIZE, SIZE))
    sum(f.sum() for f in feats).backward()
    for bn, mean in frozen_stats:  # frozen BN: eval, statistics kept
        assert torch.equal(bn.running_mean, mean)
    for i in (0, 1):
        assert all(p.grad is None for p in model.stages[i].parameters())
    for i in range(2, max(model.out_indices) + 1):
        assert all(p.grad is not None for p in model.stages[i].parameters())


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_frozen_stages_out_of_range_is_refused(name):
    num_stages = len(build(name).stages)
    with pytest.raises(ValueError, match='frozen_stages'):
        build(name, frozen_stages=num_stages)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_norm_eval_keeps_only_batchnorm_in_eval_mode(name):
    model = build(name, norm_eval=True)
    model.train()
    assert all(not bn.training for bn in _bns(model))
    assert all(m.training for m in model.modules()
               if not isinstance(m, nn.modules.batchnorm._BatchNorm))


def _drop_path_rates(model):
    """Per-block drop probabilities in block order (a block with several
    drop-path modules counted once; zero-rate ones may be Identity)."""
    rates = []
    for module in model.modules():
        if type(module).__name__ == 'DropPath':
            rate = float(module.drop_prob)
            if not rates or rate != rates[-1]:
                rates.append(rate)
    return rates


@pytest.mark.parametrize(
    'name', [n for n in sorted(BACKBONES) if n not in NO_DROP_PATH])
def test_drop_path_rises_linearly_to_the_rate(name):
    rate = 0.4
    model = build(name, drop_path_rate=rate, **DROP_PATH_ARGS.get(name, {}))
    rates = _drop_path_rates(model)
    assert len(rates) >= 2 and rates[-1] == pytest.approx(rate)
    # the first block's rate is 0 (an Identity where a backbone drops it)
    num_blocks = len(rates) + (rates[0] != 0.0)
    expected = torch.linspace(0, rate, num_blocks).tolist()
    assert rates == pytest.approx(expected[num_blocks - len(rates):])


@pytest.mark.parametrize(
    'name', [n for n in sorted(BACKBONES) if n not in NO_DROP_PATH])
def test_drop_path_is_off_in_eval_mode(name):
    torch.manual_seed(0)
    model = build(name, drop_path_rate=0.5, **DROP_PATH_ARGS.get(name, {}))
    x = torch.rand(2, 3, SIZE, SIZE)
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    model.train()
    with torch.no_grad():
        train_a, train_b = model(x), model(x)
    assert not torch.equal(train_a[-1], train_b[-1])
