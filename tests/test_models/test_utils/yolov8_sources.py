"""The two YOLOv8 sources densekit converts from, restated from their
published architecture (our own code, not theirs):

* ultralytics: ``ultralytics/cfg/models/v8/yolov8.yaml`` parsed as
  ``ultralytics/nn/tasks.py:parse_model`` does, with ``Conv``,
  ``Bottleneck``, ``C2f``, ``SPPF`` (``nn/modules/{conv,block}.py``) and
  the v8 ("legacy") ``Detect`` with its ``DFL``, ``make_anchors`` and
  ``dist2bbox`` (``nn/modules/head.py``, ``utils/tal.py``); the module
  attribute names make the ``model.{i}.*`` state-dict keys and the eval
  forward gives ``(B, 4 + nc, A)``: xywh boxes in pixels and sigmoid
  scores.
* mmyolo: the keys and shapes of ``YOLOv8CSPDarknet``
  (``backbones/csp_darknet.py``), ``YOLOv8PAFPN`` (``necks/
  yolov8_pafpn.py`` over ``BaseYOLONeck``) and ``YOLOv8HeadModule``
  (``dense_heads/yolov8_head.py``), with ``CSPLayerWithTwoConv`` /
  ``DarknetBottleneck`` / ``SPPFBottleneck`` (``layers/yolo_bricks.py``)
  and mmcv's ``ConvModule`` (``conv``, ``bn``).
"""
import math
from collections import OrderedDict

import torch
import torch.nn as nn

#: yolov8.yaml: [from, repeats, module, args]
YOLOV8_YAML = [
    [-1, 1, 'Conv', [64, 3, 2]], [-1, 1, 'Conv', [128, 3, 2]],
    [-1, 3, 'C2f', [128, True]], [-1, 1, 'Conv', [256, 3, 2]],
    [-1, 6, 'C2f', [256, True]], [-1, 1, 'Conv', [512, 3, 2]],
    [-1, 6, 'C2f', [512, True]], [-1, 1, 'Conv', [1024, 3, 2]],
    [-1, 3, 'C2f', [1024, True]], [-1, 1, 'SPPF', [1024, 5]],
    [-1, 1, 'Upsample', [None, 2, 'nearest']], [[-1, 6], 1, 'Concat', [1]],
    [-1, 3, 'C2f', [512]], [-1, 1, 'Upsample', [None, 2, 'nearest']],
    [[-1, 4], 1, 'Concat', [1]], [-1, 3, 'C2f', [256]],
    [-1, 1, 'Conv', [256, 3, 2]], [[-1, 12], 1, 'Concat', [1]],
    [-1, 3, 'C2f', [512]], [-1, 1, 'Conv', [512, 3, 2]],
    [[-1, 9], 1, 'Concat', [1]], [-1, 3, 'C2f', [1024]],
    [[15, 18, 21], 1, 'Detect', ['nc']],
]
#: yolov8.yaml scales: [depth, width, max_channels]
SCALES = dict(n=(0.33, 0.25, 1024), s=(0.33, 0.50, 1024),
              m=(0.67, 0.75, 768), l=(1.00, 1.00, 512), x=(1.00, 1.25, 512))
#: "YOLOv8n summary: 225 layers, 3157200 parameters" ... (the yaml's
#: comments, 80 classes, the DFL conv's 16 included)
PUBLISHED_PARAMS = dict(n=3157200, s=11166560, m=25902640, l=43691520,
                        x=68229648)


def _divisible(x, divisor=8):
    return math.ceil(x / divisor) * divisor


class Conv(nn.Module):

    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=0.001, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):

    def __init__(self, c1, c2, shortcut=True, k=(3, 3), e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):

    def __init__(self, c1, c2, n=1, shortcut=False, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(
            Bottleneck(self.c, self.c, shortcut, k=(3, 3), e=1.0)
            for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):

    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class Concat(nn.Module):

    def forward(self, x):
        return torch.cat(x, 1)


class DFL(nn.Module):

    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(
            c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(
            1)).view(b, 4, a)


def make_anchors(feats, strides, offset=0.5):
    points, stride_tensor = [], []
    for feat, stride in zip(feats, strides):
        h, w = feat.shape[2:]
        sx = torch.arange(w, dtype=feat.dtype) + offset
        sy = torch.arange(h, dtype=feat.dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing='ij')
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_tensor.append(torch.full((h * w, 1), stride,
                                        dtype=feat.dtype))
    return torch.cat(points), torch.cat(stride_tensor)


def dist2bbox(distance, anchor_points, dim=1):
    lt, rb = distance.chunk(2, dim)
    x1y1, x2y2 = anchor_points - lt, anchor_points + rb
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)


class Detect(nn.Module):

    def __init__(self, nc, ch):
        super().__init__()
        self.nc, self.nl, self.reg_max = nc, len(ch), 16
        self.no = nc + self.reg_max * 4
        self.stride = torch.tensor([8., 16., 32.])
        c2 = max((16, ch[0] // 4, self.reg_max * 4))
        c3 = max(ch[0], min(self.nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3),
                          nn.Conv2d(c2, 4 * self.reg_max, 1)) for x in ch)
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3),
                          nn.Conv2d(c3, self.nc, 1)) for x in ch)
        self.dfl = DFL(self.reg_max)

    def forward(self, x):
        x = [torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1)
             for i in range(self.nl)]
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(
            x, self.stride.tolist()))
        b = x[0].shape[0]
        x_cat = torch.cat([xi.view(b, self.no, -1) for xi in x], 2)
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        dbox = dist2bbox(self.dfl(box), anchors.unsqueeze(0)) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class UltralyticsYOLOv8(nn.Module):
    """``DetectionModel('yolov8{scale}.yaml', nc=nc)``: ``self.model`` is
    the ``nn.Sequential`` of parsed layers, each with ``f`` (from) and
    ``i`` (index)."""

    def __init__(self, scale='n', nc=80):
        super().__init__()
        depth, width, max_channels = SCALES[scale]
        ch, layers, self.save = [3], [], []
        for i, (f, n, name, args) in enumerate(YOLOV8_YAML):
            n = max(round(n * depth), 1) if n > 1 else n
            if name in ('Conv', 'C2f', 'SPPF'):
                c1, c2 = ch[f], _divisible(min(args[0], max_channels) * width)
                args = [c1, c2, *args[1:]]
                if name == 'C2f':
                    args.insert(2, n)
                module = dict(Conv=Conv, C2f=C2f, SPPF=SPPF)[name](*args)
            elif name == 'Upsample':
                c2, module = ch[f], nn.Upsample(None, 2, 'nearest')
            elif name == 'Concat':
                c2, module = sum(ch[x] for x in f), Concat()
            else:
                c2, module = None, Detect(nc, [ch[x] for x in f])
            module.f, module.i = f, i
            self.save.extend(x % i for x in ([f] if isinstance(f, int)
                                             else f) if x != -1)
            layers.append(module)
            if i == 0:
                ch = []
            ch.append(c2)
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        y = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [
                    x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x


# ---------------------------------------------------------------------------
# mmyolo: keys and shapes
# ---------------------------------------------------------------------------
def _make_divisible(x, widen_factor, divisor=8):  # mmyolo.models.utils
    return math.ceil(x * widen_factor / divisor) * divisor


def _make_round(x, deepen_factor):
    return max(round(x * deepen_factor), 1) if x > 1 else x


def _conv_module(prefix, c1, c2, k):
    return {f'{prefix}.conv.weight': (c2, c1, k, k),
            f'{prefix}.bn.weight': (c2, ), f'{prefix}.bn.bias': (c2, ),
            f'{prefix}.bn.running_mean': (c2, ),
            f'{prefix}.bn.running_var': (c2, ),
            f'{prefix}.bn.num_batches_tracked': ()}


def _csp_two_conv(prefix, c1, c2, n, expand_ratio=0.5):
    mid = int(c2 * expand_ratio)
    shapes = {**_conv_module(f'{prefix}.main_conv', c1, 2 * mid, 1),
              **_conv_module(f'{prefix}.final_conv', (2 + n) * mid, c2, 1)}
    for j in range(n):  # DarknetBottleneck(mid, mid, expansion=1.0)
        shapes.update(_conv_module(f'{prefix}.blocks.{j}.conv1', mid, mid, 3))
        shapes.update(_conv_module(f'{prefix}.blocks.{j}.conv2', mid, mid, 3))
    return shapes


def mmyolo_yolov8_shapes(scale='n', num_classes=80, reg_max=16):
    """key -> shape of mmyolo's ``yolov8_{scale}_syncbn_fast_8xb16-500e_
    coco.py`` model (``backbone``, ``neck``, ``bbox_head.head_module``)."""
    deepen, widen, last = SCALES[scale]
    arch = [[64, 128, 3, True, False], [128, 256, 6, True, False],
            [256, 512, 6, True, False], [512, last, 3, True, True]]
    shapes = OrderedDict(_conv_module('backbone.stem', 3,
                                      _make_divisible(64, widen), 3))
    for k, (c1, c2, n, _, spp) in enumerate(arch, start=1):
        c1, c2 = _make_divisible(c1, widen), _make_divisible(c2, widen)
        shapes.update(_conv_module(f'backbone.stage{k}.0', c1, c2, 3))
        shapes.update(_csp_two_conv(f'backbone.stage{k}.1', c2, c2,
                                    _make_round(n, deepen)))
        if spp:  # SPPFBottleneck: mid = int(in * 0.5)
            shapes.update(_conv_module(f'backbone.stage{k}.2.conv1', c2,
                                       int(c2 * 0.5), 1))
            shapes.update(_conv_module(f'backbone.stage{k}.2.conv2',
                                       int(c2 * 0.5) * 4, c2, 1))
    ins = [256, 512, last]  # YOLOv8PAFPN in/out_channels, unscaled
    n = _make_round(3, deepen)
    for layer, idx in enumerate((2, 1)):  # top-down: P4 then P3
        shapes.update(_csp_two_conv(
            f'neck.top_down_layers.{layer}',
            _make_divisible(ins[idx - 1] + ins[idx], widen),
            _make_divisible(ins[idx - 1], widen), n))
    for idx in range(2):
        c = _make_divisible(ins[idx], widen)
        shapes.update(_conv_module(f'neck.downsample_layers.{idx}', c, c, 3))
        shapes.update(_csp_two_conv(
            f'neck.bottom_up_layers.{idx}',
            _make_divisible(ins[idx] + ins[idx + 1], widen),
            _make_divisible(ins[idx + 1], widen), n))
    chans = [_make_divisible(c, widen) for c in ins]
    reg_out = max((16, chans[0] // 4, reg_max * 4))
    cls_out = max(chans[0], num_classes)
    for branch, width, out in (('reg_preds', reg_out, 4 * reg_max),
                               ('cls_preds', cls_out, num_classes)):
        for i, c in enumerate(chans):
            p = f'bbox_head.head_module.{branch}.{i}'
            shapes.update(_conv_module(f'{p}.0', c, width, 3))
            shapes.update(_conv_module(f'{p}.1', width, width, 3))
            shapes[f'{p}.2.weight'] = (out, width, 1, 1)
            shapes[f'{p}.2.bias'] = (out, )
    return shapes
