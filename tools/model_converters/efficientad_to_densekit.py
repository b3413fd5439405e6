"""Convert a trained EfficientAD of nelson1425/EfficientAD or anomalib to a
densekit :class:`EfficientAD` checkpoint.

The key mappings are :func:`convert_nelson_efficientad` and
:func:`convert_anomalib_efficientad` (in
:mod:`densekit.models.utils.efficient_ad_convert`, re-exported here; the
module docstring lists the layouts). The output is ``{'state_dict': ...,
'meta': ...}`` with every key of ``EfficientAD(model_size=...)``, for
``tools/test.py`` or ``load_from``.

Examples:
    A nelson1425 run (``python efficientad.py --subdataset bottle``). Its
    ``*_final.pth`` are whole pickled modules and need ``--unsafe-load``
    (runs pickled code: only for files you trust)::

        RUN=output/1/trainings/mvtec_ad/bottle
        python tools/model_converters/efficientad_to_densekit.py nelson \
            --teacher $RUN/teacher_final.pth \
            --student $RUN/student_final.pth \
            --autoencoder $RUN/autoencoder_final.pth \
            --size S work_dirs/efficientad_s_bottle_nelson.pth \
            --unsafe-load --check

    An anomalib Lightning checkpoint (a Lightning file with pickled
    hyper-parameters may need ``--unsafe-load`` too)::

        CKPT=results/EfficientAd/MVTecAD/bottle/latest/weights/lightning
        python tools/model_converters/efficientad_to_densekit.py anomalib \
            $CKPT/model.ckpt work_dirs/efficientad_s_bottle_anomalib.pth \
            --check

    then, with the model settings the tool prints (and stores in the
    output's ``meta['model_args']``)::

        MVTEC_CATEGORY=bottle python tools/test.py \
            configs/anomaly/efficientad_s_mvtec.py \
            work_dirs/efficientad_s_bottle_anomalib.pth \
            --cfg-options model.map_postprocess=anomalib

Map post-processing: nelson1425 normalises the maps and then pads them,
anomalib pads and resizes them and then normalises (another border value,
another score; ``EfficientAD``'s ``map_postprocess``). The printed settings
(:func:`efficientad_model_args`) select the source's order: nothing for
nelson1425 (densekit's default), ``map_postprocess='anomalib'`` plus
``padding`` / ``pad_maps`` as the checkpoint's hyper-parameters record them
(anomalib's defaults, False / True, when it has none: then check them).

Statistics: nelson1425's run saves neither the teacher mean / std nor the map
quantiles, so they are left unset; anomalib's are copied. Either way
``tools/test.py`` recomputes the quantiles (and missing teacher statistics)
through ``EfficientADStatsHook`` before testing, the way the model's
``map_postprocess`` defines them.

The teacher alone (``teacher_small.pth``, anomalib's
``pretrained_teacher_small.pth``) needs no conversion:
``model.teacher_checkpoint`` reads it (:func:`load_teacher_checkpoint`).
"""
import argparse
import os.path as osp
import sys
from typing import Mapping, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.utils.checkpoint import (  # noqa: E402
    read_checkpoint_file, state_dict_problems)
from densekit.models.utils.efficient_ad_convert import (  # noqa: E402
    convert_anomalib_efficientad, convert_nelson_efficientad,
    efficientad_model_args, load_teacher_checkpoint)

__all__ = [
    'convert_nelson_efficientad', 'convert_anomalib_efficientad',
    'efficientad_model_args', 'load_teacher_checkpoint',
    'check_against_model', 'main'
]

# anomalib Lightning hyper-parameters worth carrying into the meta
_HPARAMS = ('model_size', 'teacher_out_channels', 'padding', 'pad_maps')
# EfficientAD's defaults of the arguments efficientad_model_args returns;
# the printed settings list the others
_MODEL_DEFAULTS = dict(out_channels=384, padding=False, pad_maps=True,
                       map_postprocess='nelson1425')


def parse_args(argv=None):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        '--check', action='store_true',
        help='build densekit EfficientAD of the converted size and check '
        'every key and shape against it (recommended)')
    common.add_argument(
        '--unsafe-load', action='store_true',
        help='torch.load with weights_only=False (executes pickled code; '
        "needed for nelson1425's *_final.pth whole-module files)")
    parser = argparse.ArgumentParser(
        description='Convert a trained EfficientAD (nelson1425/EfficientAD '
        'or anomalib) to a densekit checkpoint')
    sources = parser.add_subparsers(dest='source', required=True)
    nelson = sources.add_parser(
        'nelson', parents=[common],
        help='nelson1425/EfficientAD: three files (teacher, student, '
        'autoencoder)')
    nelson.add_argument('--teacher', required=True,
                        help='teacher_final.pth or teacher_small.pth')
    nelson.add_argument('--student', required=True,
                        help='student_final.pth')
    nelson.add_argument('--autoencoder', required=True,
                        help='autoencoder_final.pth')
    nelson.add_argument('--size', required=True, choices=('S', 'M'),
                        help='S for --model_size small, M for medium')
    nelson.add_argument('dst', help='output densekit checkpoint')
    anomalib = sources.add_parser(
        'anomalib', parents=[common],
        help='anomalib EfficientAd Lightning checkpoint (or the state dict '
        'of EfficientAdModel)')
    anomalib.add_argument('src', help='anomalib checkpoint')
    anomalib.add_argument('dst', help='output densekit checkpoint')
    return parser.parse_args(argv)


def check_against_model(state_dict: dict,
                        model_args: Optional[dict] = None) -> list:
    """Build densekit's EfficientAD of the converted size (with
    ``model_args``, :func:`efficientad_model_args`); return the problems of
    a strict load."""
    from densekit.models.anomaly_detectors.efficient_ad import EfficientAD
    model_args = model_args or efficientad_model_args(state_dict, 'nelson')
    model = EfficientAD(allow_random_teacher=True, **model_args)
    return state_dict_problems(state_dict, model.state_dict())[0]


def model_settings(model_args: dict) -> str:
    """``model_size='S'`` plus the arguments that differ from
    EfficientAD's defaults, as a config would write them."""
    parts = [f'model_size={model_args["model_size"]!r}']
    parts += [f'{k}={model_args[k]!r}' for k, default in
              _MODEL_DEFAULTS.items()
              if k in model_args and model_args[k] != default]
    return ', '.join(parts)


def _plain(value):
    """A meta value ``weights_only`` loads (enums, paths -> str)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(getattr(value, 'value', value))


def main(argv=None) -> int:
    args = parse_args(argv)
    meta = dict(source=args.source)
    if args.source == 'nelson':
        parts = {name: read_checkpoint_file(getattr(args, name),
                                            args.unsafe_load)
                 for name in ('teacher', 'student', 'autoencoder')}
        state_dict = convert_nelson_efficientad(size=args.size, **parts)
        meta.update(converter='convert_nelson_efficientad',
                    converted_from={name: osp.abspath(getattr(args, name))
                                    for name in parts})
    else:
        checkpoint = read_checkpoint_file(args.src, args.unsafe_load)
        state_dict = convert_anomalib_efficientad(checkpoint)
        meta.update(converter='convert_anomalib_efficientad',
                    converted_from=osp.abspath(args.src))
        hparams = checkpoint.get('hyper_parameters') \
            if isinstance(checkpoint, Mapping) else None
        if isinstance(hparams, Mapping):
            meta['anomalib_hyper_parameters'] = {
                k: _plain(hparams[k]) for k in _HPARAMS if k in hparams}
        else:
            hparams = None
            print('the checkpoint has no hyper_parameters: anomalib\'s '
                  'defaults padding=False, pad_maps=True assumed; set '
                  'model.padding / model.pad_maps if the run used others')
    model_args = efficientad_model_args(
        state_dict, args.source,
        hparams if args.source == 'anomalib' else None)
    size, channels = model_args['model_size'], model_args['out_channels']
    meta.update(model_size=size, out_channels=channels,
                model_args=model_args,
                has_teacher_stats=bool(state_dict['has_teacher_stats']),
                has_quantiles=bool(state_dict['has_quantiles']))
    print(f'converted {len(state_dict)} tensors: EfficientAD-{size}, '
          f'{channels} teacher channels, teacher statistics '
          f'{"set" if meta["has_teacher_stats"] else "unset"}, quantiles '
          f'{"set" if meta["has_quantiles"] else "unset"} (tools/test.py '
          'recomputes the quantiles through EfficientADStatsHook)')
    if args.check:
        problems = check_against_model(state_dict, model_args)
        if problems:
            print(f'{len(problems)} mismatches against EfficientAD-{size}:')
            for line in problems:
                print(f'  {line}')
            return 1
        print(f'every key and shape matches EfficientAD-{size}')
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'saved {args.dst}; use it with '
          f'model=dict({model_settings(model_args)})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
