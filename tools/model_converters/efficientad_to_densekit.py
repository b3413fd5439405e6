"""Alias of ``tools/model_converters/convert.py efficientad`` in the old
form (the README and EfficientAD's error messages name it); see convert.py.

Examples:
    python tools/model_converters/efficientad_to_densekit.py nelson \
        --teacher T.pth --student S.pth --autoencoder A.pth --size S \
        OUT.pth --unsafe-load --check
    # = convert.py efficientad <folder of T.pth> OUT.pth --teacher T.pth
    #   --student S.pth --autoencoder A.pth --size S --unsafe-load --check
    python tools/model_converters/efficientad_to_densekit.py anomalib \
        model.ckpt OUT.pth --check
"""
import argparse
import importlib.util
import os.path as osp
import sys


def translate(argv) -> list:
    """Old ``nelson ... DST`` / ``anomalib SRC DST`` -> convert.py's
    arguments."""
    if not argv or argv[0] not in ('nelson', 'anomalib'):
        raise SystemExit('usage: efficientad_to_densekit.py {nelson,anomalib}'
                         ' ... (see convert.py efficientad --help)')
    if argv[0] == 'anomalib':
        return ['efficientad', *argv[1:]]
    parser = argparse.ArgumentParser(prog='efficientad_to_densekit.py nelson')
    for part in ('teacher', 'student', 'autoencoder'):
        parser.add_argument(f'--{part}', required=True)
    parser.add_argument('--size', choices=('S', 'M'))
    parser.add_argument('dst')
    args, rest = parser.parse_known_args(argv[1:])
    out = ['efficientad', osp.dirname(osp.abspath(args.teacher)), args.dst]
    for part in ('teacher', 'student', 'autoencoder'):
        out += [f'--{part}', getattr(args, part)]
    if args.size:
        out += ['--size', args.size]
    return out + rest


def main(argv=None) -> int:
    spec = importlib.util.spec_from_file_location(
        'densekit_convert_tool', osp.join(osp.dirname(osp.abspath(__file__)),
                                          'convert.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main(translate(list(sys.argv[1:] if argv is None else argv)))


if __name__ == '__main__':
    sys.exit(main())
