"""tools/analysis/plugin_benchmark.py's bookkeeping (no training): the
lengthened schedule of the same-time plain run, its epoch count, and the
pass rule of a pair."""
import argparse
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import plugin_benchmark  # noqa: E402

RETINANET = 'configs/det/retinanet_r50_fpn_shapes.py'


def test_schedule_options_lengthen_the_cosine_decay():
    options = plugin_benchmark.schedule_options(RETINANET, 5)
    cfg = plugin_benchmark.load_config(RETINANET, options)
    assert cfg.train_cfg.max_epochs == 5
    decay = cfg.param_scheduler[1]
    assert decay.type == 'CosineAnnealingLR'
    assert (decay.begin, decay.end, decay.T_max) == (0, 5, 5)
    # the warm-up is untouched
    assert cfg.param_scheduler[0].end == 100
    # a decay that starts later keeps its length = end - begin
    yolo = 'configs/det/yolov8_n_shapes.py'
    cfg = plugin_benchmark.load_config(
        yolo, plugin_benchmark.schedule_options(yolo, 9))
    assert (cfg.param_scheduler[1].end, cfg.param_scheduler[1].T_max) == \
        (9, 8)


def test_schedule_options_refuse_another_schedule_layout():
    coco = 'configs/det/retinanet_r50_fpn_1x_coco.py'  # MultiStepLR
    with pytest.raises(ValueError, match='retinanet_r50_fpn_1x_coco.py'):
        plugin_benchmark.schedule_options(coco, 5)


def test_same_time_epochs():
    # the plug-in took 15 min where the plain run took 9 for 3 epochs
    assert plugin_benchmark.same_time_epochs(3, 9.0, 15.0) == 5
    # never fewer epochs than the shared schedule
    assert plugin_benchmark.same_time_epochs(3, 9.0, 8.0) == 3


def test_a_pair_passes_only_when_every_criterion_holds():
    args = argparse.Namespace(min_map50=0.40, max_train_minutes=15.0,
                              tolerance=0.0)
    plain, longer = dict(mAP_50=0.41), dict(mAP_50=0.50)
    good = dict(mAP_50=0.52, minutes=14.0)
    assert plugin_benchmark.passes(good, [plain, longer], args)
    assert not plugin_benchmark.passes(dict(good, minutes=15.5), [plain],
                                       args)
    assert not plugin_benchmark.passes(dict(good, mAP_50=0.39), [], args)
    # trailing the same-time plain run fails the pair
    assert not plugin_benchmark.passes(dict(good, mAP_50=0.45),
                                       [plain, longer], args)


def test_seeds_are_summarised_by_mean_map_and_slowest_run():
    runs = [dict(mAP_50=0.5, mAP=0.3, minutes=9.0, params=7, epochs=1),
            dict(mAP_50=0.6, mAP=0.4, minutes=10.0, params=7, epochs=1)]
    res = plugin_benchmark.summarize_seeds(runs)
    assert res['mAP_50'] == pytest.approx(0.55)
    assert res['mAP'] == pytest.approx(0.35)
    assert res['minutes'] == 10.0
    assert (res['params'], res['epochs']) == (7, 1)
    assert plugin_benchmark.per_seed(res, 'mAP_50') == '0.550 (0.500, 0.600)'
