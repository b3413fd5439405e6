"""Convert a released checkpoint to densekit, for every family.

    python tools/model_converters/convert.py NAME SRC DST \
        [--config CFG] [--with-head] [--check] [--unsafe-load] [options]

NAME is one of mamba_yolo, yolov8_ultralytics, yolov8_mmyolo, focalnet,
edgenext, hornet, smt, transnext, resnet_vit, efficientad (``NAME --help``
lists the family's options). The mappings are the ``convert_<name>``
functions next to each model; the table is
:data:`densekit.models.weight_converters.CONVERTERS`.

What happens, in order:

1. SRC is read with ``torch.load(weights_only=True)`` (``--unsafe-load``:
   ``weights_only=False``, which runs pickled code: only for files you
   trust; ultralytics ``.pt`` files need it, or the one-line state-dict
   export the refusal prints).
2. Every key is mapped or the checkpoint is refused: a checkpoint of
   another family, source or model variant prints one summary line
   (``SRC is not in the ... layout``, with the family it does fit when one
   does) and exits 1.
3. What the weights are is printed: the detectors' scale and class count
   (``checkpoint looks like n (stem 16, ..., 80 classes)``),
   EfficientAD's size and statistics.
4. ``--config CFG``: the weights are checked key by key and shape by shape
   against the model CFG builds (a backbone family against its backbone;
   the file then gets the ``backbone.`` prefix, so it works as CFG's
   ``load_from`` in any task and as the backbone's ``init_cfg``). Another
   scale or class count is refused first, in one line (``checkpoint looks
   like s (...), config is n (...)``). ``--check`` without ``--config``
   checks against the model the checkpoint implies (the default config of
   the inferred scale, ``--arch`` for backbones).
5. Only when nothing was refused is DST written, through a temporary file
   renamed into place: ``{'state_dict': ..., 'meta': ...}``, for
   ``load_from`` / ``tools/test.py`` / ``DetInferencer``.

Exit status: 0 written, 1 refused (nothing written), 2 bad arguments.

Examples:
    # ultralytics: export a plain state dict where ultralytics is installed
    python -c "import torch; from ultralytics import YOLO; \
        torch.save(YOLO('yolov8n.pt').model.float().state_dict(), \
        'yolov8n_sd.pth')"
    python tools/model_converters/convert.py yolov8_ultralytics \
        yolov8n_sd.pth checkpoints/yolov8n_densekit.pth \
        --config configs/det/yolov8_n_coco.py
    # mmyolo
    python tools/model_converters/convert.py yolov8_mmyolo \
        yolov8_s_syncbn_fast_8xb16-500e_coco_20230117_180101-5aa5f0f1.pth \
        checkpoints/yolov8s_mmyolo_densekit.pth \
        --config configs/det/yolov8_s_coco.py
    # an ImageNet backbone for a task config (load_from or init_cfg)
    python tools/model_converters/convert.py focalnet focalnet_tiny_srf.pth \
        checkpoints/focalnet-t-srf_in1k.pth \
        --config configs/det/retinanet_focalnet-t-srf_fpn_1x_coco.py
    # a nelson1425 EfficientAD run directory, or an anomalib checkpoint
    python tools/model_converters/convert.py efficientad \
        output/1/trainings/mvtec_ad/bottle efficientad_s_bottle.pth \
        --unsafe-load --check
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch

from densekit.models.utils.checkpoint import (UnconvertedKeysError,
                                              state_dict_problems)
from densekit.models.weight_converters import CONVERTERS, build_config_model


def parse_args(argv=None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('src', help='source checkpoint (file or, for '
                        'efficientad, a nelson1425 run directory)')
    common.add_argument('dst', help='output densekit checkpoint')
    common.add_argument(
        '--config',
        help='densekit config whose model the weights must fit (every key '
        'and shape, scale and class count; recommended)')
    common.add_argument(
        '--with-head', action='store_true',
        help='keep the ImageNet classifier head (backbone families: the '
        "classifier's keys instead of the backbone's)")
    common.add_argument(
        '--check', action='store_true',
        help='without --config: check against the model the checkpoint '
        'implies (inferred scale, or --arch)')
    common.add_argument(
        '--unsafe-load', action='store_true',
        help='torch.load with weights_only=False (runs pickled code: only '
        'for files you trust)')
    common.add_argument(
        '--prefix', default='',
        help='prefix added to every output key (a backbone checked against '
        'a task --config gets "backbone." anyway)')
    parser = argparse.ArgumentParser(
        description='Convert a released checkpoint to densekit keys',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='families: ' + ', '.join(
            f'{name} ({spec.source})' for name, spec in CONVERTERS.items()))
    families = parser.add_subparsers(dest='name', required=True,
                                     metavar='NAME')
    for name, spec in CONVERTERS.items():
        sub = families.add_parser(name, parents=[common],
                                  help=f'{spec.source} -> densekit '
                                  f'{spec.target}')
        spec.add_arguments(sub)
    return parser.parse_args(argv)


def one_line(err: Exception) -> str:
    """The telling line of a failed ``weights_only`` load (torch's message
    is several paragraphs)."""
    lines = [line.strip() for line in str(err.__cause__ or err).splitlines()
             if line.strip()] or [type(err).__name__]
    for line in lines:
        if 'Unsupported global' in line:  # '...: GLOBAL pkg.Class was not'
            return line[line.index('Unsupported global'):].split(
                ' was not')[0]
    return lines[0]


def refuse(line: str, details=()) -> int:
    """The summary line first, then any details; status 1."""
    print(f'{line}; nothing written')
    for detail in details:
        print(f'  {detail}')
    return 1


def fitting_families(state_dict, exclude: str) -> list:
    """The other families that map every key of ``state_dict``."""
    names = []
    for name, spec in CONVERTERS.items():
        if name == exclude or spec.name == 'efficientad':
            continue
        try:
            converted = spec.convert(state_dict, False, {})
        except Exception:  # noqa: BLE001 -- any failure: does not fit
            continue
        if converted and set(converted) != set(state_dict):
            names.append(name)
    return names


def save_atomic(obj, dst: str) -> None:
    """``torch.save`` to a temporary file beside ``dst``, then rename it
    into place: an interrupted run leaves no partial DST."""
    folder = osp.dirname(osp.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix='.convert-',
                                   suffix='.tmp')
    os.close(handle)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = CONVERTERS[args.name]
    # 1. read
    try:
        checkpoint = spec.read(args.src, args.unsafe_load, args)
    except FileNotFoundError as err:
        return refuse(f'cannot read {args.src}: {err}')
    except RuntimeError as err:  # the weights_only load failed
        return refuse(f'cannot read {args.src} with weights_only=True '
                      f'({one_line(err)}). ' + (
                          spec.load_hint or 'Rerun with --unsafe-load if '
                          'you trust the file (it runs pickled code)'))
    except (ModuleNotFoundError, AttributeError) as err:
        # --unsafe-load of a file pickling classes that are not importable
        return refuse(
            f'{args.src} pickles classes of a package that is not '
            f'importable here ({err}). {spec.load_hint or ""}'.rstrip())
    # 2. convert (model-aware options come from --config)
    options = spec.converter_options(args)
    target, prefix = None, args.prefix
    if args.config:
        model = build_config_model(args.config)
        try:
            target, part_prefix = spec.config_target(model)
        except TypeError as err:
            return refuse(f'{args.config}: {err}')
        if args.with_head and spec.target == 'backbone' and part_prefix:
            return refuse(f'--with-head gives classifier keys, but '
                          f'{args.config} is a task model whose backbone '
                          'loads these weights: drop --with-head')
        options.update(spec.model_options(target))
        prefix = prefix or part_prefix
    try:
        state_dict = spec.convert(checkpoint, args.with_head, options)
    except UnconvertedKeysError as err:
        others = fitting_families(err_source(checkpoint), args.name)
        fits = f'; it fits {", ".join(others)}' if others else ''
        return refuse(
            f'{args.src} is not in the {err.layout} layout: {len(err.keys)} '
            f'of {err.total} keys unknown (first: '
            f'{", ".join(err.keys[:3])}){fits}')
    except (KeyError, ValueError, TypeError) as err:
        return refuse(f'cannot convert {args.src}: '
                      f'{err.args[0] if err.args else err}')
    # 3. describe
    try:
        found = spec.describe(state_dict, checkpoint, args)
    except ValueError as err:  # e.g. no YOLOv8 stem
        return refuse(f'{args.src} is not a {args.name} checkpoint ({err})')
    converted = f'converted {len(state_dict)} tensors' + (
        f'; checkpoint looks like {found.text}' if found.text else '')
    # 4. check
    summary, problems, optional_absent, reference = None, [], [], None
    if target is not None:
        reference = args.config
        if spec.target == 'detector':
            try:
                expected = spec.describe(target.state_dict(), None, args)
            except ValueError as err:
                return refuse(f"{args.config}: the config's model is not a "
                              f'{args.name} detector ({err})')
            if expected.key != found.key:
                # the one line to read, before any detail
                summary = (f'checkpoint looks like {found.text}, config is '
                           f'{expected.text} ({args.config})')
                if found.meta.get('num_classes') != \
                        expected.meta.get('num_classes'):
                    summary += (
                        ' (to fine-tune on other classes, convert against '
                        "a config of the checkpoint's classes and use the "
                        'result as load_from: the class layers are '
                        're-initialised)')
    elif args.check or getattr(args, 'arch', None):  # --arch: check it
        target = spec.default_model(state_dict, found, args.with_head, args)
        if target is None:
            return refuse(f'--check: no densekit model to check {args.name} '
                          'weights against; pass --config (or --arch)')
        reference = spec.model_name(target, found, args)
    if target is not None:
        problems, optional_absent = state_dict_problems(
            state_dict, target.state_dict(),
            optional=spec.optional_keys(args.with_head))
        if problems and summary is None:
            summary = (f'{len(problems)} mismatches against {reference} '
                       f'(first: {problems[0]})')
    if summary is not None:
        return refuse(summary, [converted, f'{len(problems)} mismatches '
                                f'against {reference}:'] + problems)
    print(converted)
    if target is not None:
        print(f'every key and shape matches {reference}')
        if optional_absent:
            print('left to their initialisation (no counterpart in the '
                  f'source): {", ".join(optional_absent)}')
        if prefix == 'backbone.' and args.config:
            print(f'written with the backbone. prefix: as load_from of '
                  f'{args.config} it loads the backbone, the rest of the '
                  'model keeps its initialisation')
    else:
        print('not checked against a model: pass --config (or --check) to '
              'check every key and shape')
    # 5. save
    if prefix:
        state_dict = type(state_dict)((prefix + k, v)
                                      for k, v in state_dict.items())
    meta = dict(converter=f'convert_{args.name}',
                converted_from=osp.abspath(args.src),
                origin=spec.source, with_head=args.with_head,
                **found.meta)
    if args.config:
        meta['config'] = args.config
    save_atomic(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'saved {args.dst}' +
          (f'; use it with {found.settings}' if found.settings else ''))
    return 0


def err_source(checkpoint):
    """The flat state dict of a checkpoint for trying other families."""
    from densekit.models.utils.checkpoint import unwrap_state_dict
    try:
        return unwrap_state_dict(checkpoint, 'convert.py',
                                 keys=('state_dict', 'ema', 'model'))
    except TypeError:
        return {}


if __name__ == '__main__':
    sys.exit(main())
