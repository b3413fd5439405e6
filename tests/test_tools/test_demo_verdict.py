"""The make-demo verdict counts found objects, wrong labels and false
positives."""
import importlib.util
import os.path as osp

from tests.conftest import ROOT


def _tool():
    spec = importlib.util.spec_from_file_location(
        'demo_verdict', osp.join(ROOT, 'tools', 'analysis',
                                 'demo_verdict.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdict_counts():
    tool = _tool()
    coco = dict(
        images=[dict(id=1, file_name='a.jpg'), dict(id=2, file_name='b.jpg')],
        categories=[dict(id=1, name='circle'), dict(id=2, name='star')],
        annotations=[
            dict(image_id=1, category_id=1, bbox=[0, 0, 10, 10]),
            dict(image_id=1, category_id=2, bbox=[20, 20, 10, 10]),
            dict(image_id=2, category_id=2, bbox=[0, 0, 10, 10])])
    preds = [
        dict(file='x/a.jpg', instances=[
            dict(bbox=[0, 0, 10, 10], score=0.9, class_name='circle'),
            dict(bbox=[1, 0, 10, 10], score=0.8, class_name='circle'),  # dup
            dict(bbox=[20, 20, 30, 30], score=0.9, class_name='circle'),
            dict(bbox=[50, 50, 60, 60], score=0.2, class_name='star')]),
        dict(file='x/b.jpg', instances=[])]
    assert tool.verdict(preds, coco, 'm', 0.3, 0.5) == (
        'm: found 1/3 val objects in the 2 pictures at score >= 0.3 (1 wrong '
        'labels, 1 false positives); val mAP@0.5 0.500')
