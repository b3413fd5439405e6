"""tools/analysis/device_check.py: the CPU smoke form CI runs, and its
tensor-creation audit."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT

sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import device_check


def run_as_densekit_code(source: str, name: str = 'fake_module.py'):
    """Execute ``source`` as if it were a densekit module (its frames carry
    a densekit file name)."""
    code = compile(source, osp.join(ROOT, 'densekit', 'models', name),
                   'exec')
    exec(code, {'torch': torch})


def test_audit_flags_densekit_tensors_without_device():
    leaks = []
    with device_check.audit_tensor_creation(leaks):
        run_as_densekit_code('torch.zeros(3)\ntorch.arange(4)')
        run_as_densekit_code('torch.zeros(3, device="cpu")')
        run_as_densekit_code('x = torch.ones(2)', name='../datasets/t.py')
        torch.zeros(2)  # test code, not densekit's
        torch.as_tensor(torch.ones(2))  # keeps its input's device
    assert leaks == ['densekit/models/fake_module.py:1 torch.zeros',
                     'densekit/models/fake_module.py:2 torch.arange']


def test_scan_calls_of_mamba_yolo_t_are_recorded():
    calls = device_check.record_scan_calls([3, 64, 64], 'cpu')
    # one SS2D per VSS/XSS block of the backbone, batch scaled to 3
    assert len(calls) >= 4
    for call in calls:
        u, delta, A, B, C, D, bias = call['shapes']
        assert u[0] == 3 and u == delta and B[0] == C[0] == 3
        assert A[0] == u[1] == D[0] == bias[0]
        assert call['delta_softplus'] is True


@pytest.mark.slow
def test_cpu_smoke_check_passes_for_every_family():
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/device_check.py', '--device', 'cpu',
         '--smoke', '--audit-devices'],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    table = proc.stdout[proc.stdout.rfind('families on cpu'):]
    print(proc.stdout[:3000], table)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    for name in device_check.FAMILIES:
        for precision in ('fp32', 'amp'):
            assert f'| {name} | {precision} |' in table
    assert 'FAIL' not in proc.stdout
    assert 'triton vs reference (float32)' in proc.stdout


# mmseg's own VisionTransformer / SwinTransformer call .item() on a
# linspace while building, so the DToP and Swin-UNet families cannot
# build on the meta device (upstream code); the smoke check above runs
# them
META_FAMILIES = [name for name in device_check.FAMILIES
                 if name not in ('dtop', 'swin-unet')]


@pytest.mark.parametrize('name', META_FAMILIES)
def test_family_builds_on_the_meta_device(name):
    """No construction step needs real CPU data (a model then builds
    straight onto any device, e.g. ``torch.device('cuda')``)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, device_check.FAMILIES[name][0]))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    devices = {p.device.type for p in model.parameters()}
    assert devices == {'meta'}, devices
