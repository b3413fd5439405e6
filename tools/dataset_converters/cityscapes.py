"""Make Cityscapes' ``*_gtFine_labelTrainIds.png`` (what the configs read).

Examples:
    python tools/dataset_converters/cityscapes.py data/cityscapes --nproc 4
    python tools/dataset_converters/cityscapes.py data/cityscapes \
        --source labelIds        # from *_gtFine_labelIds.png instead

Reads ``<data_root>/gtFine/<split>/<city>/*_gtFine_polygons.json`` (the
default, as mmsegmentation's converter) or ``*_gtFine_labelIds.png`` and
writes the 19-class trainId maps beside them (255 = ignored).
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from densekit.datasets.converters import convert_cityscapes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='folder holding gtFine/')
    parser.add_argument('--source', choices=('polygons', 'labelIds'),
                        default='polygons')
    parser.add_argument('--nproc', type=int, default=1)
    args = parser.parse_args(argv)
    try:
        written = convert_cityscapes(args.data_root, args.source, args.nproc)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {len(written)} *_gtFine_labelTrainIds.png under '
          f'{osp.join(args.data_root, "gtFine")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
