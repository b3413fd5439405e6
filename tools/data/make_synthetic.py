"""Generate a densekit synthetic dataset.

Usage (from the repository root; densekit need not be installed)::

    python tools/data/make_synthetic.py shapes --out data/synthetic_shapes \
        --num-train 2000 --num-val 200 --img-size 256 --seed 0 [--overwrite]
    python tools/data/make_synthetic.py shapes_seg \
        --out data/synthetic_shapes_seg
    python tools/data/make_synthetic.py anomaly --out data/synthetic_anomaly \
        --category texture --num-train 200 --num-test-good 40 \
        --num-test-defect 60
    python tools/data/make_synthetic.py phantom --out data/synthetic_phantom \
        --num-train 12 --num-test 4 --size 24 128 128 --num-organs 4
    python tools/data/make_synthetic.py moving_shapes \
        --out data/synthetic_moving_shapes --num-train-seqs 48 \
        --num-val-seqs 8 --frames-per-seq 20 --val-frames-per-seq 30

Each task is a sub-command with its own options: ``shapes`` (COCO-format
detection and instance segmentation), ``shapes_seg`` (the same images as
semantic segmentation in ADE20K's layout), ``anomaly`` (a woven texture
with scratch, blob and colour defects in MVTec AD's layout), ``phantom``
(3D CT-like volumes of ellipsoid organs in TransUNet's Synapse layout),
``moving_shapes`` (videos of moving shapes with track ids in Argoverse-HD's
layout, for streaming perception). An
existing
dataset made with the same options is reused unless ``--overwrite`` is given.
"""
import argparse
import os.path as osp
import sys
import time

try:
    import densekit  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def add_shapes_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--out',
        default='data/synthetic_shapes',
        help='dataset root (the config data_root)')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--min-objects', type=int, default=1)
    parser.add_argument('--max-objects', type=int, default=6)
    parser.add_argument(
        '--min-size',
        type=float,
        default=None,
        help='smallest object diameter in px (default img_size * 20 / 256)')
    parser.add_argument(
        '--max-size',
        type=float,
        default=None,
        help='largest object diameter in px (default img_size * 110 / 256)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='regenerate even if a dataset with these options exists')


def run_shapes(args: argparse.Namespace) -> None:
    from densekit.datasets.synthetic import generate_shapes_coco

    start = time.time()
    info = generate_shapes_coco(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.img_size,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
        min_size=args.min_size,
        max_size=args.max_size,
        seed=args.seed,
        overwrite=args.overwrite)
    action = ('reused existing dataset (same options; pass --overwrite to '
              'regenerate)' if info['reused'] else
              f'generated in {time.time() - start:.1f}s')
    print(f'synthetic shapes in {info["out_dir"]}: {action}')
    for split in ('train', 'val'):
        print(f'  {split}: {info["num_images"][split]} images, '
              f'{info["num_instances"][split]} instances')
        print(f'    images:      {info["img_dirs"][split]}')
        print(f'    annotations: {info["ann_files"][split]}')


def add_shapes_seg_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--out',
        default='data/synthetic_shapes_seg',
        help='dataset root (the config data_root)')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--max-objects', type=int, default=6)
    parser.add_argument(
        '--min-label-area', type=int, default=0,
        help='visible shapes smaller than this (px) are labelled 0')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='regenerate even if a dataset with these options exists')


def run_shapes_seg(args: argparse.Namespace) -> None:
    from densekit.datasets.synthetic import generate_shapes_ade

    start = time.time()
    info = generate_shapes_ade(
        args.out, num_train=args.num_train, num_val=args.num_val,
        img_size=args.img_size, max_objects=args.max_objects,
        min_label_area=args.min_label_area, seed=args.seed,
        overwrite=args.overwrite)
    action = ('reused existing dataset (same options; pass --overwrite to '
              'regenerate)' if info['reused'] else
              f'generated in {time.time() - start:.1f}s')
    print(f'synthetic shapes segmentation (ADE20K layout) in '
          f'{info["out_dir"]}: {action}')
    for split in ('training', 'validation'):
        print(f'  {split}: {info["num_images"][split]} images')
        print(f'    images:      {info["img_dirs"][split]}')
        print(f'    annotations: {info["ann_dirs"][split]}')
    total = sum(info['pixel_counts'].values())
    print('  training pixels: ' + ', '.join(
        f'{name} {100 * n / total:.1f}%'
        for name, n in info['pixel_counts'].items()))


def add_anomaly_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--out',
        default='data/synthetic_anomaly',
        help='dataset root (the MVTecADDataset data_root)')
    parser.add_argument('--category', default='texture',
                        help='category folder name')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-test-good', type=int, default=40)
    parser.add_argument(
        '--num-test-defect', type=int, default=60,
        help='defective test images, shared evenly by --defect-types')
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument(
        '--defect-types', nargs='+', default=None,
        help='defect folders to write, from scratch, blob, color '
        '(default: all three)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='regenerate even if a dataset with these options exists')


def run_anomaly(args: argparse.Namespace) -> None:
    from densekit.datasets.synthetic import generate_anomaly_mvtec

    # None keeps the generator's default (every defect type)
    extra = {} if args.defect_types is None else dict(
        defect_types=args.defect_types)
    start = time.time()
    info = generate_anomaly_mvtec(
        args.out, category=args.category, num_train=args.num_train,
        num_test_good=args.num_test_good,
        num_test_defect=args.num_test_defect, img_size=args.img_size,
        seed=args.seed, overwrite=args.overwrite, **extra)
    action = ('reused existing dataset (same options; pass --overwrite to '
              'regenerate)' if info['reused'] else
              f'generated in {time.time() - start:.1f}s')
    print(f'synthetic anomaly set (MVTec AD layout) in '
          f'{info["category_dir"]}: {action}')
    for folder, num in info['num_images'].items():
        print(f'  {folder}: {num} images')


def add_phantom_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--out',
        default='data/synthetic_phantom',
        help='dataset root (the SynapseDataset data_root)')
    parser.add_argument('--num-train', type=int, default=12,
                        help='training volumes (written as npz slices)')
    parser.add_argument('--num-test', type=int, default=4,
                        help='test volumes (written as .npy.h5)')
    parser.add_argument('--size', type=int, nargs=3, default=[24, 128, 128],
                        metavar=('D', 'H', 'W'))
    parser.add_argument('--num-organs', type=int, default=4,
                        help='organs per volume, 1..6')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='regenerate even if a dataset with these options exists')


def run_phantom(args: argparse.Namespace) -> None:
    from densekit.datasets.synthetic import generate_phantom_synapse

    start = time.time()
    info = generate_phantom_synapse(
        args.out, num_train_volumes=args.num_train,
        num_test_volumes=args.num_test, size=tuple(args.size),
        num_organs=args.num_organs, seed=args.seed, overwrite=args.overwrite)
    action = ('reused existing dataset (same options; pass --overwrite to '
              'regenerate)' if info['reused'] else
              f'generated in {time.time() - start:.1f}s')
    print(f'synthetic phantom organs (TransUNet Synapse layout) in '
          f'{info["out_dir"]}: {action}')
    print(f'  train: {len(info["train_ids"])} volumes, '
          f'{info["num_train_slices"]} npz slices')
    print(f'  test:  {len(info["test_ids"])} volumes (test_vol_h5)')
    print(f'  classes: {", ".join(info["classes"])} (read with '
          f'SynapseDataset(metainfo=phantom_metainfo({args.num_organs})))')


def add_moving_shapes_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--out',
        default='data/synthetic_moving_shapes',
        help='dataset root (the ArgoverseHDDataset data_root; frames are '
        'under frames/, so data_prefix=dict(img=\'frames/\'))')
    parser.add_argument('--num-train-seqs', type=int, default=48)
    parser.add_argument('--num-val-seqs', type=int, default=8)
    parser.add_argument('--frames-per-seq', type=int, default=20,
                        help='frames per training sequence')
    parser.add_argument('--val-frames-per-seq', type=int, default=30,
                        help='frames per validation sequence')
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=5)
    parser.add_argument(
        '--min-size', type=float, default=None,
        help='smallest object diameter in px (default img_size * 16 / 256)')
    parser.add_argument(
        '--max-size', type=float, default=None,
        help='largest object diameter in px (default img_size * 72 / 256)')
    parser.add_argument(
        '--min-speed', type=float, default=None,
        help='smallest base speed in px/frame (default img_size * 1.5 / 256)')
    parser.add_argument(
        '--max-speed', type=float, default=None,
        help='largest base speed in px/frame (default img_size * 6 / 256)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='regenerate even if a dataset with these options exists')


def run_moving_shapes(args: argparse.Namespace) -> None:
    from densekit.datasets.synthetic import generate_moving_shapes_argoverse

    start = time.time()
    info = generate_moving_shapes_argoverse(
        args.out, num_train_seqs=args.num_train_seqs,
        num_val_seqs=args.num_val_seqs, frames_per_seq=args.frames_per_seq,
        val_frames_per_seq=args.val_frames_per_seq,
        img_size=args.img_size, min_objects=args.min_objects,
        max_objects=args.max_objects, min_size=args.min_size,
        max_size=args.max_size, min_speed=args.min_speed,
        max_speed=args.max_speed, seed=args.seed, overwrite=args.overwrite)
    action = ('reused existing dataset (same options; pass --overwrite to '
              'regenerate)' if info['reused'] else
              f'generated in {time.time() - start:.1f}s')
    print(f'synthetic moving shapes (Argoverse-HD layout) in '
          f'{info["out_dir"]}: {action}')
    for split in ('train', 'val'):
        print(f'  {split}: {info["num_sequences"][split]} sequences, '
              f'{info["num_images"][split]} frames, '
              f'{info["num_instances"][split]} instances')
        print(f'    annotations: {info["ann_files"][split]}')
    print(f'  frames: {info["frames_dir"]}/<seq_name>/<fid:06d>.jpg '
          f"(data_prefix=dict(img='{info['img_prefix']}'))")


# task name -> (help, add its arguments, run it)
TASKS = {
    'shapes': ('COCO-format detection and instance segmentation of circles, '
               'squares, triangles and stars', add_shapes_args, run_shapes),
    'shapes_seg': ('the shapes images as semantic segmentation, ADE20K '
                   'layout', add_shapes_seg_args, run_shapes_seg),
    'anomaly': ('a woven texture with scratch, blob and colour defects for '
                'anomaly detection, MVTec AD layout', add_anomaly_args,
                run_anomaly),
    'phantom': ('3D CT-like volumes of ellipsoid organs for medical '
                'segmentation, TransUNet Synapse layout', add_phantom_args,
                run_phantom),
    'moving_shapes': ('videos of moving circles, squares, triangles and stars '
                      'with track ids for streaming detection, Argoverse-HD '
                      'layout', add_moving_shapes_args, run_moving_shapes),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a densekit synthetic dataset')
    tasks = parser.add_subparsers(dest='task', metavar='task', required=True)
    for name, (help_text, add_args, _) in TASKS.items():
        add_args(tasks.add_parser(name, help=help_text))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        TASKS[args.task][2](args)
    except (ValueError, FileExistsError) as e:  # bad options: no traceback
        sys.exit(f'make_synthetic.py {args.task}: error: {e}')


if __name__ == '__main__':
    main()
