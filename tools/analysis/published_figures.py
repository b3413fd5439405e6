"""Published reference figures for the backbones in the densekit model zoo.

This is a plain data module (no imports beyond ``typing``) that a zoo-table
generator can load with ``runpy.run_path`` or a normal import.  It holds
numbers exactly as the official repositories / docs print them; nothing here
was measured by densekit and nothing was estimated.  Where a field is not
published it is simply left out.

``PUBLISHED`` is keyed by ``(backbone_class_name, arch)``, with the class
names and arch strings used by ``densekit.models.backbones`` (e.g.
``('FocalNet', 'T-SRF')``, ``('HorNet', 'T-GF')``, ``('SMT', 'S')``,
``('TransNeXt', 'tiny')``, ``('EdgeNeXt', 's')``), plus reference models:
``('ResNet', '50')``, ``('SwinTransformer', 'T'|'S'|'B')``,
``('YOLOv8CSPDarknet', 'n'|'s'|'m'|'l'|'x')`` and
``('MambaYOLO', 'T'|'B'|'L')``.

Each value is a dict with some of these keys:

``imagenet``  dict(top1 [%], params_m [M], gflops [G], resolution, pretrain,
              source[, note]) -- ImageNet-1K classification model.
``imagenet_other``  list of dicts of the same form for other recipes
              (USI distillation, ImageNet-22K pre-training, older README
              versions ...).
``coco``      list of dict(detector, box_ap[, mask_ap, ap50, ap75, params_m,
              gflops], source[, note]).  ``detector`` names the method and
              schedule, e.g. 'Mask R-CNN 1x', 'Cascade Mask R-CNN 3x',
              'YOLOv8 640'.  For YOLO-style entries ``box_ap`` is COCO val2017
              mAP@[.50:.95].  ``params_m`` / ``gflops`` are for the whole
              detector as published (detection FLOPs are usually quoted at
              1280x800, YOLO FLOPs at 640x640).
``ade20k``    list of dict(method, miou_ss[, miou_ms, params_m, gflops],
              source[, note]).  ``method`` names decoder, iterations and crop,
              e.g. 'UPerNet 160k 512x512'.  ``miou_ms`` is multi-scale + flip.
``cityscapes`` list of dicts like ``ade20k`` (only the ResNet-50 reference).

Caveats worth knowing when building a table (details in the ``note`` fields):

* EdgeNeXt publishes MAdds (multiply-adds) rather than "FLOPs"; they are
  stored in ``gflops`` (as G) because that is the quantity other papers
  also call FLOPs (fvcore-style MAC counts).
* Several repositories changed numbers between README revisions (HorNet
  top-1, SMT-T params, TransNeXt-T mask AP); the values kept here are from the
  latest revision that was read, older ones are listed in ``imagenet_other``
  or ``note``.
* Sources are given as ``owner/repo path@commit`` (commit = the stored
  revision that was read) or as a URL.

Use :func:`published` for a safe lookup.
"""
from typing import Any, Dict, List, Tuple

# ---------------------------------------------------------------------------
# Source strings (kept in one place so they stay consistent).
# ---------------------------------------------------------------------------
_FOCALNET = 'microsoft/FocalNet README.md@ca2f105f (same numbers @01de3327)'
_HORNET = 'raoyongming/HorNet README.md@25408eb4 (NeurIPS 2022 revision)'
_HORNET_OLD = 'raoyongming/HorNet README.md@05bb97fe (first arXiv revision)'
_HORNET_DET = 'raoyongming/HorNet object_detection/README.md@3c4b0c6f'
_HORNET_SEG = 'raoyongming/HorNet semantic_segmentation/README.md@555996be'
_EDGENEXT = 'mmaaz60/EdgeNeXt README.md@0e2ec0eb (Model Zoo table)'
_SMT = 'AFeng-x/SMT README.md@00bbe222'
_SMT_PAPER = ('arXiv 2307.08579 abstract (Lin et al., ICCV 2023): '
              '"SMT with 11.5M / 2.4GFLOPs and 32M / 7.7GFLOPs"')
_SMT_PAPER_TABLE = 'arXiv 2307.08579 Table 2 (ImageNet-1K comparison)'
_TRANSNEXT = 'DaiShiResearch/TransNeXt README.md@2000243b'
_TRANSNEXT_CLS = 'DaiShiResearch/TransNeXt classification/README.md@c8a99743'
_TRANSNEXT_DET = ('DaiShiResearch/TransNeXt detection/maskrcnn/README.md'
                  '@c8a99743')
_TRANSNEXT_SEG = ('DaiShiResearch/TransNeXt segmentation/upernet/README.md'
                  '@c8a99743')
_SWIN_CLS = 'microsoft/Swin-Transformer MODELHUB.md@2cb103f2'
_SWIN_DET = ('SwinTransformer/Swin-Transformer-Object-Detection README.md'
             '@ed8d4d85')
_SWIN_SEG = ('SwinTransformer/Swin-Transformer-Semantic-Segmentation '
             'README.md@8fdda7bb')
_MMDET_SWIN = 'open-mmlab/mmdetection configs/swin/README.md@0de48fd4'
_MMSEG_SWIN = 'open-mmlab/mmsegmentation configs/swin/README.md@07c94a37'
_MMDET_RETINA = 'open-mmlab/mmdetection configs/retinanet/README.md@10e91fd2'
_MMDET_MASK = 'open-mmlab/mmdetection configs/mask_rcnn/README.md@0190d6bb'
_MMDET_CASCADE = ('open-mmlab/mmdetection configs/cascade_rcnn/README.md'
                  '@1d2f98d5')
_MMSEG_UPER = 'open-mmlab/mmsegmentation configs/upernet/README.md@0b127a56'
_TV_R50 = ('https://pytorch.org/vision/stable/models/generated/'
           'torchvision.models.resnet50.html (ResNet50_Weights.IMAGENET1K_V1)')
_ULTRA = 'ultralytics/ultralytics docs/en/models/yolov8.md@0059318a'
_MMYOLO = ('open-mmlab/mmyolo configs/yolov8/README.md (mask-refine revision; '
           'the open-mmlab copy stored @03c99420 is an earlier revision with '
           'converted official weights only)')
_MAMBAYOLO = 'HZAI-ZJNU/Mamba-YOLO README.md@b26cbda2'
_MAMBAYOLO_YAML = ('HZAI-ZJNU/Mamba-YOLO ultralytics/cfg/models/mamba-yolo/'
                   'Mamba-YOLO-{}.yaml@bbf904c5 (scales comment)')

_IN1K = 'ImageNet-1K'


def _cls(top1: float, params_m: float, gflops: float, source: str,
         resolution: int = 224, pretrain: str = _IN1K,
         **extra: Any) -> Dict[str, Any]:
    d = dict(top1=top1, params_m=params_m, gflops=gflops,
             resolution=resolution, pretrain=pretrain, source=source)
    d.update(extra)
    return d


PUBLISHED: Dict[Tuple[str, str], Dict[str, Any]] = {}

# ---------------------------------------------------------------------------
# FocalNet (microsoft/FocalNet).  SRF = focal kernels [3,5] in classification
# ([9,11] in the dense-prediction tables), LRF = [3,5,7] ([9,11,13]).
# Detection FLOPs are as printed in the README (whole Mask R-CNN model).
# ---------------------------------------------------------------------------
PUBLISHED[('FocalNet', 'T-SRF')] = dict(
    imagenet=_cls(82.1, 28.4, 4.4, _FOCALNET),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=45.9, mask_ap=41.3,
             params_m=48.6, gflops=267, source=_FOCALNET),
        dict(detector='Mask R-CNN 3x', box_ap=47.6, mask_ap=42.6,
             params_m=48.6, gflops=267, source=_FOCALNET),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=46.5, miou_ms=47.2,
             params_m=61, gflops=944, source=_FOCALNET),
    ],
)
PUBLISHED[('FocalNet', 'T-LRF')] = dict(
    imagenet=_cls(82.3, 28.6, 4.5, _FOCALNET),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=46.1, mask_ap=41.5,
             params_m=48.8, gflops=268, source=_FOCALNET),
        dict(detector='Mask R-CNN 3x', box_ap=48.0, mask_ap=42.9,
             params_m=48.8, gflops=268, source=_FOCALNET),
        dict(detector='Cascade Mask R-CNN 3x', box_ap=51.5,
             params_m=87.1, gflops=751, source=_FOCALNET,
             note='kernels [11,9,9,7]; config *_lrf.py'),
        dict(detector='ATSS 3x', box_ap=49.6, params_m=37.2, gflops=220,
             source=_FOCALNET, note='kernels [11,9,9,7]; config *_lrf.py'),
        dict(detector='Sparse R-CNN 3x', box_ap=49.9, params_m=111.2,
             gflops=178, source=_FOCALNET,
             note='kernels [11,9,9,7]; 300 proposals; config *_lrf.py'),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=46.8, miou_ms=47.8,
             params_m=61, gflops=949, source=_FOCALNET),
    ],
)
PUBLISHED[('FocalNet', 'S-SRF')] = dict(
    imagenet=_cls(83.4, 49.9, 8.6, _FOCALNET),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=48.0, mask_ap=42.7,
             params_m=70.8, gflops=356, source=_FOCALNET),
        dict(detector='Mask R-CNN 3x', box_ap=48.9, mask_ap=43.6,
             params_m=70.8, gflops=356, source=_FOCALNET),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=49.3, miou_ms=50.1,
             params_m=83, gflops=1035, source=_FOCALNET),
    ],
)
PUBLISHED[('FocalNet', 'S-LRF')] = dict(
    imagenet=_cls(83.5, 50.3, 8.7, _FOCALNET),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=48.3, mask_ap=43.1,
             params_m=72.3, gflops=365, source=_FOCALNET),
        dict(detector='Mask R-CNN 3x', box_ap=49.3, mask_ap=43.8,
             params_m=72.3, gflops=365, source=_FOCALNET),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=49.1, miou_ms=50.1,
             params_m=84, gflops=1044, source=_FOCALNET),
    ],
)
PUBLISHED[('FocalNet', 'B-SRF')] = dict(
    imagenet=_cls(83.7, 88.1, 15.3, _FOCALNET),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=48.8, mask_ap=43.3,
             params_m=109.4, gflops=496, source=_FOCALNET),
        dict(detector='Mask R-CNN 3x', box_ap=49.6, mask_ap=44.1,
             params_m=109.4, gflops=496, source=_FOCALNET),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=50.2, miou_ms=51.1,
             params_m=124, gflops=1180, source=_FOCALNET),
    ],
)
PUBLISHED[('FocalNet', 'B-LRF')] = dict(
    imagenet=_cls(83.9, 88.7, 15.4, _FOCALNET),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=49.0, mask_ap=43.5,
             params_m=111.4, gflops=507, source=_FOCALNET),
        dict(detector='Mask R-CNN 3x', box_ap=49.8, mask_ap=44.1,
             params_m=111.4, gflops=507, source=_FOCALNET),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=50.5, miou_ms=51.4,
             params_m=126, gflops=1192, source=_FOCALNET,
             note='the paper abstract compares this 50.5 (single-scale) '
                  'with Swin-B 49.7, which is Swin-B ms+flip (49.72) in '
                  'the Swin segmentation README'),
    ],
)

# ---------------------------------------------------------------------------
# HorNet (raoyongming/HorNet).  IN-1K top-1 from the NeurIPS-revision README;
# the first-arXiv README printed higher S/B numbers (kept in imagenet_other).
# The repo publishes only Cascade Mask R-CNN 3x for COCO.
# ---------------------------------------------------------------------------
_HORNET_SEG_NOTE_BGF = ('README lists crop 640x640 for B-GF, but '
                        'semantic_segmentation/configs/hornet/'
                        'upernet_hornet_base_gf_512_160k_ade20k.py sets '
                        'crop_size=(512, 512)')
PUBLISHED[('HorNet', 'T-7x7')] = dict(
    imagenet=_cls(82.8, 22, 4.0, _HORNET),
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=51.7, mask_ap=44.8,
               params_m=80, gflops=730, source=_HORNET_DET)],
    ade20k=[dict(method='UPerNet 160k 512x512', miou_ss=48.1, miou_ms=48.9,
                 params_m=52, gflops=926, source=_HORNET_SEG)],
)
PUBLISHED[('HorNet', 'T-GF')] = dict(
    imagenet=_cls(83.0, 23, 3.9, _HORNET),
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=52.4, mask_ap=45.6,
               params_m=80, gflops=728, source=_HORNET_DET)],
    ade20k=[dict(method='UPerNet 160k 512x512', miou_ss=49.2, miou_ms=49.3,
                 params_m=55, gflops=924, source=_HORNET_SEG)],
)
PUBLISHED[('HorNet', 'S-7x7')] = dict(
    imagenet=_cls(83.8, 50, 8.8, _HORNET),
    imagenet_other=[_cls(84.0, 50, 8.8, _HORNET_OLD,
                         note='superseded value (first arXiv README)')],
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=52.7, mask_ap=45.6,
               params_m=107, gflops=830, source=_HORNET_DET)],
    ade20k=[dict(method='UPerNet 160k 512x512', miou_ss=49.2, miou_ms=49.8,
                 params_m=81, gflops=1030, source=_HORNET_SEG)],
)
PUBLISHED[('HorNet', 'S-GF')] = dict(
    imagenet=_cls(84.0, 50, 8.7, _HORNET),
    imagenet_other=[_cls(84.2, 50, 8.7, _HORNET_OLD,
                         note='superseded value (first arXiv README)')],
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=53.3, mask_ap=46.3,
               params_m=108, gflops=827, source=_HORNET_DET)],
    ade20k=[dict(method='UPerNet 160k 512x512', miou_ss=50.0, miou_ms=50.5,
                 params_m=85, gflops=1027, source=_HORNET_SEG)],
)
PUBLISHED[('HorNet', 'B-7x7')] = dict(
    imagenet=_cls(84.2, 87, 15.6, _HORNET),
    imagenet_other=[_cls(84.3, 87, 15.6, _HORNET_OLD,
                         note='superseded value (first arXiv README)')],
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=53.3, mask_ap=46.1,
               params_m=144, gflops=969, source=_HORNET_DET)],
    ade20k=[dict(method='UPerNet 160k 512x512', miou_ss=50.0, miou_ms=50.5,
                 params_m=121, gflops=1174, source=_HORNET_SEG)],
)
PUBLISHED[('HorNet', 'B-GF')] = dict(
    imagenet=_cls(84.3, 88, 15.5, _HORNET),
    imagenet_other=[_cls(84.5, 88, 15.5, _HORNET_OLD,
                         note='superseded value (first arXiv README)')],
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=54.0, mask_ap=46.9,
               params_m=146, gflops=965, source=_HORNET_DET)],
    ade20k=[dict(method='UPerNet 160k 640x640', miou_ss=50.5, miou_ms=50.9,
                 params_m=126, gflops=1171, source=_HORNET_SEG,
                 note=_HORNET_SEG_NOTE_BGF)],
)
# ImageNet-22K models (no IN-1K top-1 published in the README).
PUBLISHED[('HorNet', 'L-7x7')] = dict(
    imagenet_other=[dict(params_m=209, gflops=34.8, resolution=224,
                         pretrain='ImageNet-22K', source=_HORNET,
                         note='no top-1 given in the README')],
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=55.4, mask_ap=48.0,
               params_m=251, gflops=1363, source=_HORNET_DET,
               note='ImageNet-22K pre-trained')],
    ade20k=[dict(method='UPerNet 160k 640x640', miou_ss=54.1, miou_ms=54.5,
                 params_m=232, gflops=2473, source=_HORNET_SEG,
                 note='ImageNet-22K pre-trained')],
)
PUBLISHED[('HorNet', 'L-GF')] = dict(
    imagenet_other=[dict(params_m=211, gflops=34.7, resolution=224,
                         pretrain='ImageNet-22K', source=_HORNET,
                         note='no top-1 given in the README')],
    coco=[dict(detector='Cascade Mask R-CNN 3x', box_ap=56.0, mask_ap=48.6,
               params_m=259, gflops=1358, source=_HORNET_DET,
               note='ImageNet-22K pre-trained')],
    ade20k=[dict(method='UPerNet 160k 640x640', miou_ss=55.0, miou_ms=55.2,
                 params_m=239, gflops=2465, source=_HORNET_SEG,
                 note='ImageNet-22K pre-trained')],
)

# ---------------------------------------------------------------------------
# EdgeNeXt (mmaaz60/EdgeNeXt).  The README publishes MAdds, stored as gflops.
# The repository has no COCO Mask R-CNN/RetinaNet or ADE20K results; the
# paper evaluates SSDLite on COCO and DeepLabv3 on Pascal VOC (see 's').
# ---------------------------------------------------------------------------
_MADDS = ('README column is MAdds (multiply-adds), stored here as gflops; '
          'EdgeNeXt is trained and counted at 256x256 (official '
          'models/model.py; timm lists EdgeNeXt-S 5.6M / 1.3G at 256)')
PUBLISHED[('EdgeNeXt', 'xxs')] = dict(
    imagenet=_cls(71.23, 1.33, 0.261, _EDGENEXT, resolution=256, note=_MADDS),
    imagenet_other=[_cls(70.33, 1.33, 0.260, _EDGENEXT, resolution=256,
                         note='edgenext_xx_small_bn_hs (BN + HardSwish); '
                              + _MADDS)],
)
PUBLISHED[('EdgeNeXt', 'xs')] = dict(
    imagenet=_cls(74.96, 2.34, 0.538, _EDGENEXT, resolution=256, note=_MADDS),
    imagenet_other=[_cls(74.87, 2.34, 0.536, _EDGENEXT, resolution=256,
                         note='edgenext_x_small_bn_hs (BN + HardSwish); '
                              + _MADDS)],
)
PUBLISHED[('EdgeNeXt', 's')] = dict(
    imagenet=_cls(79.41, 5.59, 1.26, _EDGENEXT, resolution=256, note=_MADDS),
    imagenet_other=[
        _cls(81.07, 5.59, 1.26, _EDGENEXT, resolution=256,
             note='edgenext_small_usi (USI distillation recipe); ' + _MADDS),
        _cls(78.39, 5.58, 1.25, _EDGENEXT, resolution=256,
             note='edgenext_small_bn_hs (BN + HardSwish); ' + _MADDS),
    ],
    coco=[dict(detector='SSDLite', box_ap=27.9,
               source='https://www.wizwand.com/paper/68fa6dc11e209131cea3be26 '
                      '(benchmark aggregator for arXiv 2206.10589)',
               note='paper table itself not read; params/FLOPs and input '
                    'size not recorded; also listed there: Pascal VOC '
                    'DeepLabv3 80.2 mIoU')],
)
PUBLISHED[('EdgeNeXt', 'b')] = dict(
    imagenet=_cls(82.47, 18.51, 3.84, _EDGENEXT, resolution=256, note=_MADDS),
    imagenet_other=[
        _cls(83.68, 18.51, 3.84, _EDGENEXT, resolution=256,
             note='edgenext_base_usi (USI distillation recipe); ' + _MADDS),
        _cls(83.31, 18.51, 3.84, _EDGENEXT, resolution=256,
             pretrain='ImageNet-21K',
             note='edgenext_base_IN21K, IN-21K pre-trained, IN-1K top-1; '
                  + _MADDS),
    ],
)

# ---------------------------------------------------------------------------
# SMT (AFeng-x/SMT).  README: COCO only 3x schedules, ADE20K only S and B.
# ---------------------------------------------------------------------------
PUBLISHED[('SMT', 'T')] = dict(
    imagenet=_cls(82.2, 11.5, 2.4, _SMT_PAPER + '; ' + _SMT,
                  note='README rounds params to 12M'),
)
PUBLISHED[('SMT', 'S')] = dict(
    imagenet=_cls(83.7, 20.5, 4.7, _SMT_PAPER_TABLE + '; ' + _SMT,
                  note='README rounds params to 21M (what the official '
                       'smt_s definition builds is not published; see '
                       'densekit/models/backbones/smt.py)'),
    coco=[
        dict(detector='Mask R-CNN 3x', box_ap=49.0, mask_ap=43.4,
             params_m=40, gflops=265, source=_SMT),
        dict(detector='Cascade Mask R-CNN 3x', box_ap=51.9, mask_ap=44.7,
             params_m=78, gflops=744, source=_SMT),
        dict(detector='RetinaNet 3x', box_ap=47.3, params_m=30, gflops=247,
             source=_SMT),
        dict(detector='Sparse R-CNN 3x', box_ap=50.2, params_m=102,
             gflops=171, source=_SMT),
        dict(detector='ATSS 3x', box_ap=49.9, params_m=28, gflops=214,
             source=_SMT),
        dict(detector='DINO 4scale', box_ap=54.0, params_m=40, gflops=309,
             source=_SMT),
    ],
    ade20k=[dict(method='UPerNet 160k 512x512', miou_ss=49.2, miou_ms=50.2,
                 params_m=50, gflops=935, source=_SMT)],
)
PUBLISHED[('SMT', 'B')] = dict(
    imagenet=_cls(84.3, 32, 7.7, _SMT + '; ' + _SMT_PAPER),
    coco=[dict(detector='Mask R-CNN 3x', box_ap=49.8, mask_ap=44.0,
               params_m=52, gflops=328, source=_SMT)],
    ade20k=[dict(method='UPerNet 160k 512x512', miou_ss=49.6, miou_ms=50.6,
                 params_m=62, gflops=1004, source=_SMT)],
)
PUBLISHED[('SMT', 'L')] = dict(
    imagenet_other=[
        _cls(87.1, 81, 17.6, _SMT, pretrain='ImageNet-22K',
             note='IN-22K pre-trained, fine-tuned on IN-1K at 224'),
        _cls(88.1, 81, 51.6, _SMT, resolution=384, pretrain='ImageNet-22K',
             note='IN-22K pre-trained, fine-tuned on IN-1K at 384'),
    ],
)

# ---------------------------------------------------------------------------
# TransNeXt (DaiShiResearch/TransNeXt).  README gives no FLOPs for the
# dense-prediction models; Micro has no dense-prediction results.
# UPerNet multi-scale: "interpolation / extrapolation" of the position bias.
# ---------------------------------------------------------------------------
PUBLISHED[('TransNeXt', 'micro')] = dict(
    imagenet=_cls(82.5, 12.8, 2.7, _TRANSNEXT_CLS),
    imagenet_other=[_cls(82.6, 13.1, 3.3, _TRANSNEXT_CLS, resolution=256,
                         note='Micro with aggregated attention in all '
                              'stages (A-A-A-A), trained at 256')],
)
PUBLISHED[('TransNeXt', 'tiny')] = dict(
    imagenet=_cls(84.0, 28.2, 5.7, _TRANSNEXT_CLS),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=49.9, mask_ap=44.6,
             params_m=47.9, source=_TRANSNEXT_DET,
             note='README: mask AP corrected in paper v3 (v1/v2 had a '
                  'lower, mis-entered value)'),
        dict(detector='DINO 4scale 12e', box_ap=55.1, params_m=47.8,
             source=_TRANSNEXT),
        dict(detector='DINO 5scale 12e', box_ap=55.7, params_m=48.1,
             source=_TRANSNEXT),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=51.1, miou_ms=51.5,
             miou_ms_extrapolation=51.7, params_m=59, source=_TRANSNEXT_SEG),
        dict(method='Mask2Former 160k 512x512', miou_ss=53.4, params_m=47.5,
             source=_TRANSNEXT),
    ],
)
PUBLISHED[('TransNeXt', 'small')] = dict(
    imagenet=_cls(84.7, 49.7, 10.3, _TRANSNEXT_CLS),
    imagenet_other=[_cls(86.0, 49.7, 32.1, _TRANSNEXT_CLS, resolution=384,
                         note='fine-tuned at 384')],
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=51.1, mask_ap=45.5,
             params_m=69.3, source=_TRANSNEXT_DET),
        dict(detector='DINO 5scale 12e', box_ap=56.6, params_m=69.6,
             source=_TRANSNEXT),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=52.2, miou_ms=52.5,
             miou_ms_extrapolation=52.8, params_m=80, source=_TRANSNEXT_SEG),
        dict(method='Mask2Former 160k 512x512', miou_ss=54.1, params_m=69.0,
             source=_TRANSNEXT),
    ],
)
PUBLISHED[('TransNeXt', 'base')] = dict(
    imagenet=_cls(84.8, 89.7, 18.4, _TRANSNEXT_CLS),
    imagenet_other=[_cls(86.2, 89.7, 56.3, _TRANSNEXT_CLS, resolution=384,
                         note='fine-tuned at 384')],
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=51.7, mask_ap=45.9,
             params_m=109.2, source=_TRANSNEXT_DET),
        dict(detector='DINO 5scale 12e', box_ap=57.1, params_m=110,
             source=_TRANSNEXT),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=53.0, miou_ms=53.5,
             miou_ms_extrapolation=53.7, params_m=121,
             source=_TRANSNEXT_SEG),
        dict(method='Mask2Former 160k 512x512', miou_ss=54.7, params_m=109,
             source=_TRANSNEXT,
             note='the often-quoted "TransNeXt-B 54.7 mIoU" is this '
                  'Mask2Former result, not UPerNet'),
    ],
)

# ---------------------------------------------------------------------------
# Swin Transformer (official repos + mmdet/mmseg reproductions).
# Official detection configs train 1x/3x with multi-scale 480-800 + AdamW;
# mmdet's 1x Swin-T config has no multi-scale crop (hence 42.7 vs 43.7).
# ---------------------------------------------------------------------------
PUBLISHED[('SwinTransformer', 'T')] = dict(
    imagenet=_cls(81.2, 28, 4.5, _SWIN_CLS),
    coco=[
        dict(detector='Mask R-CNN 1x', box_ap=43.7, mask_ap=39.8,
             params_m=48, gflops=267, source=_SWIN_DET,
             note='official; mstrain 480-800, AdamW'),
        dict(detector='Mask R-CNN 3x', box_ap=46.0, mask_ap=41.6,
             params_m=48, gflops=267, source=_SWIN_DET, note='official'),
        dict(detector='Cascade Mask R-CNN 1x', box_ap=48.1, mask_ap=41.7,
             params_m=86, gflops=745, source=_SWIN_DET, note='official'),
        dict(detector='Cascade Mask R-CNN 3x', box_ap=50.4, mask_ap=43.7,
             params_m=86, gflops=745, source=_SWIN_DET, note='official'),
        dict(detector='Mask R-CNN 1x (mmdet)', box_ap=42.7, mask_ap=39.3,
             source=_MMDET_SWIN, note='mmdet reproduction, no multi-scale'),
        dict(detector='Mask R-CNN 3x (mmdet)', box_ap=46.0, mask_ap=41.6,
             source=_MMDET_SWIN, note='mmdet, multi-scale crop, fp32 '
                                       '(fp16 run: 46.0 / 41.7)'),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=44.51, miou_ms=45.81,
             params_m=60, gflops=945, source=_SWIN_SEG, note='official'),
        dict(method='UPerNet 160k 512x512 (mmseg)', miou_ss=44.41,
             source=_MMSEG_SWIN, note='mmseg reproduction, batch 16'),
    ],
)
PUBLISHED[('SwinTransformer', 'S')] = dict(
    imagenet=_cls(83.2, 50, 8.7, _SWIN_CLS),
    coco=[
        dict(detector='Mask R-CNN 3x', box_ap=48.5, mask_ap=43.3,
             params_m=69, gflops=359, source=_SWIN_DET, note='official'),
        dict(detector='Cascade Mask R-CNN 3x', box_ap=51.9, mask_ap=45.0,
             params_m=107, gflops=838, source=_SWIN_DET, note='official'),
        dict(detector='Mask R-CNN 3x (mmdet)', box_ap=48.2, mask_ap=43.2,
             source=_MMDET_SWIN, note='mmdet, multi-scale crop, fp16'),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=47.64, miou_ms=49.47,
             params_m=81, gflops=1038, source=_SWIN_SEG, note='official'),
        dict(method='UPerNet 160k 512x512 (mmseg)', miou_ss=47.72,
             source=_MMSEG_SWIN, note='mmseg reproduction'),
    ],
)
PUBLISHED[('SwinTransformer', 'B')] = dict(
    imagenet=_cls(83.5, 88, 15.4, _SWIN_CLS),
    coco=[
        dict(detector='Cascade Mask R-CNN 3x', box_ap=51.9, mask_ap=45.0,
             params_m=145, gflops=982, source=_SWIN_DET, note='official'),
    ],
    ade20k=[
        dict(method='UPerNet 160k 512x512', miou_ss=48.13, miou_ms=49.72,
             params_m=121, gflops=1188, source=_SWIN_SEG, note='official'),
        dict(method='UPerNet 160k 512x512 (mmseg)', miou_ss=47.99,
             source=_MMSEG_SWIN, note='mmseg, IN-1K 224 pre-training'),
    ],
)

# ---------------------------------------------------------------------------
# ResNet-50 reference numbers (torchvision weights, mmdet / mmseg model zoo).
# mmdet/mmseg READMEs give no params/FLOPs.  'pytorch' style unless noted.
# ---------------------------------------------------------------------------
PUBLISHED[('ResNet', '50')] = dict(
    imagenet=_cls(76.13, 25.557032, 4.09, _TV_R50,
                  note='torchvision V1 weights (V1.5 bottleneck)'),
    coco=[
        dict(detector='RetinaNet 1x', box_ap=36.5, source=_MMDET_RETINA),
        dict(detector='RetinaNet 1x (caffe)', box_ap=36.3,
             source=_MMDET_RETINA),
        dict(detector='RetinaNet 2x', box_ap=37.4, source=_MMDET_RETINA),
        dict(detector='RetinaNet 3x (ms 640-800)', box_ap=39.5,
             source=_MMDET_RETINA),
        dict(detector='Mask R-CNN 1x', box_ap=38.2, mask_ap=34.7,
             source=_MMDET_MASK),
        dict(detector='Mask R-CNN 2x', box_ap=39.2, mask_ap=35.4,
             source=_MMDET_MASK),
        dict(detector='Mask R-CNN 3x (ms, poly)', box_ap=40.9, mask_ap=37.1,
             source=_MMDET_MASK),
        dict(detector='Cascade R-CNN 1x', box_ap=40.3,
             source=_MMDET_CASCADE),
        dict(detector='Cascade Mask R-CNN 1x', box_ap=41.2, mask_ap=35.9,
             source=_MMDET_CASCADE),
        dict(detector='Cascade Mask R-CNN 20e', box_ap=41.9, mask_ap=36.5,
             source=_MMDET_CASCADE),
    ],
    ade20k=[
        dict(method='UPerNet 80k 512x512', miou_ss=40.70, miou_ms=41.81,
             source=_MMSEG_UPER),
        dict(method='UPerNet 160k 512x512', miou_ss=42.05, miou_ms=42.78,
             source=_MMSEG_UPER),
    ],
    cityscapes=[
        dict(method='UPerNet 40k 512x1024', miou_ss=77.10, miou_ms=78.37,
             source=_MMSEG_UPER),
        dict(method='UPerNet 80k 512x1024', miou_ss=78.19, miou_ms=79.19,
             source=_MMSEG_UPER),
    ],
)

# ---------------------------------------------------------------------------
# YOLOv8 (CSPDarknet/C2f backbone + PAFPN + decoupled head), COCO val2017
# mAP50-95 at 640.  Official Ultralytics numbers carry params/FLOPs of the
# whole detector; mmyolo re-trained numbers (box-only annotations) are lower.
# The *-cls rows are the Ultralytics classification models (same backbone
# family + Classify head) -- not the detection backbone alone.
# ---------------------------------------------------------------------------
_YOLOV8 = {
    # arch: (ultra AP, params, GFLOPs, mmyolo AP, mmyolo mask-refine AP,
    #        cls top1, cls params, cls GFLOPs)
    'n': (37.3, 3.2, 8.7, 37.2, 37.4, 69.0, 2.7, 4.3),
    's': (44.9, 11.2, 28.6, 44.2, 45.1, 73.8, 6.4, 13.5),
    'm': (50.2, 25.9, 78.9, 49.8, 50.6, 76.8, 17.0, 42.7),
    'l': (52.9, 43.7, 165.2, 52.1, 53.0, 76.8, 37.5, 99.7),
    'x': (53.9, 68.2, 257.8, 52.7, 54.0, 79.0, 57.4, 154.8),
}
for _arch, (_ap, _p, _f, _mm, _mmr, _t1, _cp, _cf) in _YOLOV8.items():
    PUBLISHED[('YOLOv8CSPDarknet', _arch)] = dict(
        imagenet_other=[_cls(
            _t1, _cp, _cf, _ULTRA,
            note=f'YOLOv8{_arch}-cls (Classify head), 224 input; the docs '
                 'column header reads "FLOPs (B) at 640"')],
        coco=[
            dict(detector='YOLOv8 640 (Ultralytics)', box_ap=_ap,
                 params_m=_p, gflops=_f, source=_ULTRA),
            dict(detector='YOLOv8 640 500e (mmyolo)', box_ap=_mm,
                 source=_MMYOLO, note='mmyolo re-training, box-only '
                                      'annotations, SyncBN + AMP, 8xb16'),
            dict(detector='YOLOv8 640 500e (mmyolo, mask refine)',
                 box_ap=_mmr, source=_MMYOLO,
                 note='mask-refined boxes (L/X also copy-paste); matches '
                      'the official training recipe'),
        ],
    )
del _arch, _ap, _p, _f, _mm, _mmr, _t1, _cp, _cf
PUBLISHED[('YOLOv8CSPDarknet', 'm')]['coco'][0]['note'] = (
    'earlier mmyolo README (converted official weights) lists 50.3')
PUBLISHED[('YOLOv8CSPDarknet', 'x')]['coco'][0]['note'] = (
    'earlier mmyolo README (converted official weights) lists 53.8')

# ---------------------------------------------------------------------------
# Mamba-YOLO (HZAI-ZJNU/Mamba-YOLO), trained from scratch, COCO val2017.
# README names the B model "Mamba YOLO-M" (its link is Mamba-YOLO-B.yaml).
# The README does not state the evaluation image size.
# ---------------------------------------------------------------------------
PUBLISHED[('MambaYOLO', 'T')] = dict(
    coco=[dict(detector='Mamba YOLO (from scratch)', box_ap=44.5, ap50=61.2,
               ap75=48.2, params_m=5.8, gflops=13.2, source=_MAMBAYOLO,
               note='Mamba-YOLO-T.yaml is not in the stored index, so its '
                    'scales comment could not be checked')],
)
PUBLISHED[('MambaYOLO', 'B')] = dict(
    coco=[dict(detector='Mamba YOLO (from scratch)', box_ap=49.1, ap50=66.5,
               ap75=53.5, params_m=19.1, gflops=45.4, source=_MAMBAYOLO,
               note='README row "Mamba YOLO-M"; the yaml comment says '
                    '21.8M params / 49.7 GFLOPs (' +
                    _MAMBAYOLO_YAML.format('B') + ')')],
)
PUBLISHED[('MambaYOLO', 'L')] = dict(
    coco=[dict(detector='Mamba YOLO (from scratch)', box_ap=52.1, ap50=69.8,
               ap75=56.5, params_m=57.6, gflops=156.2, source=_MAMBAYOLO,
               note='yaml comment agrees: 57.6M / 156.2 GFLOPs (it is '
                    'mislabelled "Mamba-YOLOv8-T summary"; ' +
                    _MAMBAYOLO_YAML.format('L') + ')')],
)


def published(backbone: str, arch: str) -> Dict[str, Any]:
    """Return the published figures for ``(backbone, arch)``, or ``{}``.

    ``backbone`` is the densekit backbone class name (e.g. ``'FocalNet'``),
    ``arch`` the arch string it takes (e.g. ``'T-SRF'``).  The returned dict
    is the stored one; copy it before mutating.
    """
    return PUBLISHED.get((backbone, arch), {})


def known_keys() -> List[Tuple[str, str]]:
    """All ``(backbone, arch)`` keys that have published figures."""
    return sorted(PUBLISHED)
