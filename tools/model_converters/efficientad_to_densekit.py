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

    then, with the size (and out_channels) the tool prints::

        MVTEC_CATEGORY=bottle python tools/test.py \
            configs/anomaly/efficientad_s_mvtec.py \
            work_dirs/efficientad_s_bottle_nelson.pth

Statistics: nelson1425's run saves neither the teacher mean / std nor the map
quantiles, so they are left unset; anomalib's are copied. Either way
``tools/test.py`` recomputes the quantiles (and missing teacher statistics)
through ``EfficientADStatsHook`` before testing; anomalib's imported
quantiles are taken on padded, resized maps and differ slightly from the
ones densekit computes. anomalib's ``padding=True`` is not in the weights:
set ``model.padding=True`` for such a model (the tool prints the setting when
the checkpoint's hyper-parameters record it).

The teacher alone (``teacher_small.pth``, anomalib's
``pretrained_teacher_small.pth``) needs no conversion:
``model.teacher_checkpoint`` reads it (:func:`load_teacher_checkpoint`).
"""
import argparse
import os.path as osp
import sys
from typing import Mapping

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.utils.checkpoint import (  # noqa: E402
    read_checkpoint_file, state_dict_problems)
from densekit.models.utils.efficient_ad_convert import (  # noqa: E402
    convert_anomalib_efficientad, convert_nelson_efficientad,
    efficientad_arch, load_teacher_checkpoint)

__all__ = [
    'convert_nelson_efficientad', 'convert_anomalib_efficientad',
    'load_teacher_checkpoint', 'check_against_model', 'main'
]

# anomalib Lightning hyper-parameters worth carrying into the meta
_HPARAMS = ('model_size', 'teacher_out_channels', 'padding', 'pad_maps')


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


def check_against_model(state_dict: dict) -> list:
    """Build densekit's EfficientAD of the converted size; return the
    problems of a strict load."""
    from densekit.models.anomaly_detectors.efficient_ad import EfficientAD
    size, channels = efficientad_arch(state_dict)
    model = EfficientAD(model_size=size, out_channels=channels,
                        allow_random_teacher=True)
    return state_dict_problems(state_dict, model.state_dict())[0]


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
    size, channels = efficientad_arch(state_dict)
    meta.update(model_size=size, out_channels=channels,
                has_teacher_stats=bool(state_dict['has_teacher_stats']),
                has_quantiles=bool(state_dict['has_quantiles']))
    print(f'converted {len(state_dict)} tensors: EfficientAD-{size}, '
          f'{channels} teacher channels, teacher statistics '
          f'{"set" if meta["has_teacher_stats"] else "unset"}, quantiles '
          f'{"set" if meta["has_quantiles"] else "unset"} (tools/test.py '
          'recomputes the quantiles through EfficientADStatsHook)')
    if args.check:
        problems = check_against_model(state_dict)
        if problems:
            print(f'{len(problems)} mismatches against EfficientAD-{size}:')
            for line in problems:
                print(f'  {line}')
            return 1
        print(f'every key and shape matches EfficientAD-{size}')
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    settings = f"model_size='{size}'" + \
        (f', out_channels={channels}' if channels != 384 else '')
    if meta.get('anomalib_hyper_parameters', {}).get('padding'):
        settings += ', padding=True'
    print(f'saved {args.dst}; use it with model=dict({settings})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
