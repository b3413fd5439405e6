"""Convert NIfTI image/label volumes to TransUNet's slice format.

Examples:
    # Synapse: CT window [-125, 275] -> [0, 1], 13 raw organs -> TransUNet's
    # 8, TransUNet's 12 test cases (those present) to test_vol_h5
    python tools/dataset_converters/nifti_to_slices.py \
        data/RawData/Training data/Synapse --layout synapse
    # ACDC: per-volume min-max, labels kept, 20 % of the frames as test
    python tools/dataset_converters/nifti_to_slices.py \
        data/ACDC/training data/ACDC_slices --layout acdc --test-fraction 0.2

Writes ``<out>/train_npz/*.npz``, ``<out>/test_vol_h5/*.npy.h5``,
``<out>/lists/lists_Synapse/{train,test_vol}.txt`` and ``<out>/spacing.json``
(see :mod:`densekit.datasets.converters.medical`). ``--layout`` picks how
volumes are found and the defaults of ``--window``/``--normalize``/
``--label-map``; an option given on the command line wins over the layout's
default. The test volumes are ``--test-ids`` or ``--test-list`` if given,
else ``--test-fraction`` if given, else the layout's default (Synapse:
TransUNet's test cases; ACDC: none).
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from densekit.datasets.converters.medical import (CT_WINDOW, SYNAPSE_LABEL_MAP,
                                                  TRANSUNET_SYNAPSE_TEST_CASES,
                                                  convert_nifti_to_slices,
                                                  find_acdc_pairs,
                                                  find_synapse_raw_pairs,
                                                  split_volume_ids)

# layout -> (find volumes, window, normalize, label map)
LAYOUTS = {
    'synapse': (find_synapse_raw_pairs, CT_WINDOW, None, 'synapse'),
    'acdc': (find_acdc_pairs, None, 'minmax', 'none'),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='Synapse RawData/Training folder (holds '
                        'img/ and label/) or an ACDC split folder')
    parser.add_argument('out', help='output root (the SynapseDataset '
                        'data_root)')
    parser.add_argument('--layout', choices=tuple(LAYOUTS), default='synapse')
    parser.add_argument('--window', nargs=2, type=float, default=None,
                        metavar=('LOW', 'HIGH'),
                        help='clip window scaled to [0, 1] (synapse default '
                        '-125 275)')
    parser.add_argument('--no-window', action='store_true',
                        help='do not window intensities')
    parser.add_argument('--normalize', choices=('minmax', 'zscore', 'none'),
                        default=None, help='per-volume normalisation (acdc '
                        'default minmax); needs --no-window for synapse')
    parser.add_argument('--label-map', choices=('synapse', 'none'),
                        default=None, help='synapse: raw 13 organs -> '
                        'TransUNet 8 (synapse default); none: keep labels')
    split = parser.add_argument_group('split (first given wins)')
    split.add_argument('--test-ids', nargs='+', default=None,
                       help='volume ids for test_vol_h5, e.g. case0001')
    split.add_argument('--test-list', default=None,
                       help='file with one test volume id per line '
                       '(TransUNet test_vol.txt format)')
    split.add_argument('--test-fraction', type=float, default=None,
                       help='random fraction of volumes for testing')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of --test-fraction')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='check written labels are < this')
    parser.add_argument('--axes', choices=('zyx', 'zxy'), default='zyx',
                        help='slice array order (zxy: TransUNet '
                        'preprocess_data.py)')
    parser.add_argument('--overwrite', action='store_true')
    return parser.parse_args(argv)


def _test_ids(args, ids):
    if args.test_ids is not None:
        return list(args.test_ids)
    if args.test_list is not None:
        with open(args.test_list, encoding='utf-8') as f:
            return [line.strip() for line in f if line.strip()]
    if args.test_fraction is not None:
        return list(split_volume_ids(ids, args.test_fraction, args.seed))
    if args.layout == 'synapse':
        present = [c for c in TRANSUNET_SYNAPSE_TEST_CASES if c in ids]
        print(f'test volumes: TransUNet\'s test cases present '
              f'({len(present)} of {len(TRANSUNET_SYNAPSE_TEST_CASES)})')
        return present
    return []


def main(argv=None) -> int:
    args = parse_args(argv)
    find, window, normalize, label_map = LAYOUTS[args.layout]
    if args.window is not None:
        window = tuple(args.window)
    if args.no_window:
        window = None
    if args.normalize is not None:
        normalize = None if args.normalize == 'none' else args.normalize
    if args.label_map is not None:
        label_map = args.label_map
    try:
        pairs = find(args.src)
        info = convert_nifti_to_slices(
            pairs, args.out, test_ids=_test_ids(args, [p[0] for p in pairs]),
            window=window, normalize=normalize,
            label_map=SYNAPSE_LABEL_MAP if label_map == 'synapse' else None,
            num_classes=args.num_classes, axes=args.axes,
            overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'{len(info["train_ids"])} training volumes -> '
          f'{info["num_train_slices"]} slices in '
          f'{osp.join(args.out, "train_npz")}')
    print(f'{len(info["test_ids"])} test volumes in '
          f'{osp.join(args.out, "test_vol_h5")}')
    print('label voxels: ' + ', '.join(
        f'{k}: {v}' for k, v in info['label_counts'].items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
