"""Simulated real-time streaming of one detector over one video sequence.

This is sap-toolkit's "simulated streaming" (Li et al., "Towards Streaming
Perception", ECCV 2020, Sec. 3 and Appendix; ``mtli/sap-toolkit``,
``det/srt_det.py``, also shipped as ``sAP/det/srt_det.py`` in
``yancie-yjr/StreamYOLO``): instead of running the detector against the wall
clock, a virtual clock is advanced by each processing step's runtime, so the
outcome depends only on the runtimes (deterministic with a latency model) and
not on the load of the machine the evaluation runs on.

The stream model (one detector process, no frame buffering):

* Frame ``i`` (0-based) arrives at ``i / fps``; the stream lasts
  ``num_frames / fps`` seconds (``end_time``).
* When idle at time ``t`` the detector takes the **latest** frame that has
  arrived, ``floor(t * fps)``. If that frame was already processed (the
  detector is faster than the camera) it waits for the next frame and starts
  when it arrives. Frames that arrived while the detector was busy and were
  superseded by a newer one are never processed: they are *dropped*.
* A step on frame ``i`` started at ``t`` finishes at
  ``t + runtime(i) / perf_factor``. An output that would finish at or after
  ``end_time`` is discarded and the simulation stops (as ``srt_det.py``).

``perf_factor`` follows sap-toolkit's ``--perf-factor`` (``util/
runtime_dist.py``: ``samples /= perf_factor``): it is a *speed* factor, 2.0
simulates hardware twice as fast (half the runtime), 0.5 twice as slow.

Exact clock. The simulation runs on exact rational times
(:class:`fractions.Fraction` seconds; see :func:`exact_time` for how
``fps``, runtimes, ``perf_factor`` and ``end_time`` are read), so float
round-off can neither move a pick nor a pairing: a frame arriving exactly
when the detector becomes idle is available to it (``floor(t * fps)`` is
exact), an output finishing exactly at ``end_time`` is discarded, and an
output finishing exactly at a frame's arrival counts for that frame in
:func:`~densekit.evaluation.functional.pair_stream_predictions` (given the
exact :attr:`StreamSchedule.exact_finish_times`). sap-toolkit's
``srt_det.py`` runs the same schedule on a float clock (``t_elapsed +=
rt``), where for instance 14 steps of 1.5 frame intervals at 30 FPS end
just after frame 21's arrival instead of at it.

Example (runtime 1.5 frame intervals, 8 frames at 30 FPS)::

    t (frames)  0    1.5   3    4.5   6    7.5
    picks       0    1     3    4     6    7   -> 2 and 5 dropped
    finishes    1.5  3     4.5  6     7.5  9   -> 9 >= 8: frame 7's output
                                                  is discarded
"""
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Integral, Real
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

# floats are read as the simplest fraction with at most this denominator
# that rounds to them (exact_time)
MAX_DENOMINATOR = 10**6

RuntimeModel = Union[float, Sequence[float], np.ndarray, Callable[[Any],
                                                                  Any]]

__all__ = ['StreamSchedule', 'simulate_stream', 'exact_time']


def exact_time(value: Union[Real, Fraction]) -> Fraction:
    """A time (or rate, or factor) as an exact rational number.

    ``int`` and :class:`~fractions.Fraction` values are exact already. A
    float ``x`` is read as the fraction ``p / q`` with ``q <=``
    :data:`MAX_DENOMINATOR` closest to it *if that fraction rounds to the
    very same float*, else as the float's exact binary value: ``1 / 30``,
    ``0.05`` and ``6 / 30`` become 1/30, 1/20 and 1/5, a measured
    ``perf_counter`` duration stays what it is. Either way the result lies
    inside the float's own rounding interval, so distinct floats keep their
    order and equal floats stay equal (comparing floats read this way gives
    the float comparison), while sums and products of the results are
    exact. Times up to about 8000 s hold at most one fraction with ``q <=
    10**6`` per rounding interval, so the intended fraction is the one
    found.

    Args:
        value (int | float | Fraction | numpy scalar): A finite number.

    Returns:
        Fraction: The exact value.

    Raises:
        TypeError: ``value`` is not a real number (or is a bool).
        ValueError: ``value`` is NaN or infinite.

    Examples:
        >>> exact_time(1 / 30), exact_time(0.05), exact_time(3)
        (Fraction(1, 30), Fraction(1, 20), Fraction(3, 1))
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f'exact_time: expected a real number, but got '
                        f'{value!r} ({type(value).__name__})')
    if isinstance(value, Fraction):
        return value
    if isinstance(value, Integral):
        return Fraction(int(value))
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f'exact_time: {value!r} is not a finite number')
    exact = Fraction(x)
    simple = exact.limit_denominator(MAX_DENOMINATOR)
    # type(value): a numpy float32 rounds at its own precision
    return simple if type(value)(float(simple)) == value else exact


@dataclass
class StreamSchedule:
    """The outcome of :func:`simulate_stream` for one sequence.

    Attributes:
        input_fids (np.ndarray): int64 (P, ): index of the frame each of the
            P recorded outputs was computed from, increasing.
        start_times (np.ndarray): float64 (P, ): when each step started, in
            seconds from the arrival of frame 0 (rounded from
            :attr:`exact_start_times`).
        finish_times (np.ndarray): float64 (P, ): when each output became
            available (``start + runtime``), non-decreasing (rounded from
            :attr:`exact_finish_times`, which is what to pair with).
        runtimes (np.ndarray): float64 (P, ): simulated runtime of each step
            in seconds, after ``perf_factor``.
        num_frames (int): Frames in the stream.
        fps (float): Frame rate of the stream.
        measured_runtimes (np.ndarray, optional): float64 (P, ): the
            ``time.perf_counter`` duration of each detector call, when a
            detector was run; None otherwise.
        outputs (list, optional): What the detector returned for each
            recorded step; None when no detector was run.
        exact_start_times (tuple[Fraction]): (P, ) the exact start times.
        exact_finish_times (tuple[Fraction]): (P, ) the exact finish times;
            pass these (not the float :attr:`finish_times`) to
            :func:`~densekit.evaluation.functional.pair_stream_predictions`
            or as the ``finish_times`` of ``streaming_coco_eval``.
        exact_fps (Fraction, optional): The frame rate as read by
            :func:`exact_time`; frame ``i`` arrives at ``i / exact_fps``.
    """
    input_fids: np.ndarray
    start_times: np.ndarray
    finish_times: np.ndarray
    runtimes: np.ndarray
    num_frames: int
    fps: float
    measured_runtimes: Optional[np.ndarray] = None
    outputs: Optional[List[Any]] = field(default=None, repr=False)
    exact_start_times: Tuple[Fraction, ...] = field(default=(), repr=False)
    exact_finish_times: Tuple[Fraction, ...] = field(default=(), repr=False)
    exact_fps: Optional[Fraction] = field(default=None, repr=False)

    @property
    def num_processed(self) -> int:
        """int: Frames whose output was recorded."""
        return int(len(self.input_fids))

    @property
    def dropped_fids(self) -> np.ndarray:
        """np.ndarray: int64 indices of the frames without a recorded
        output (skipped while busy, or whose output came after the end)."""
        keep = np.ones(self.num_frames, dtype=bool)
        keep[self.input_fids] = False
        return np.flatnonzero(keep).astype(np.int64)

    @property
    def num_dropped(self) -> int:
        """int: ``num_frames - num_processed``."""
        return self.num_frames - self.num_processed

    @property
    def latencies(self) -> np.ndarray:
        """np.ndarray: float64 (P, ): seconds from the arrival of each
        output's input frame to the output (waiting + runtime)."""
        return self.finish_times - self.input_fids / self.fps


def _check_positive(value, name: str, allow_zero: bool = False) -> Fraction:
    """``value`` as an exact :class:`Fraction` (:func:`exact_time`)."""
    if isinstance(value, bool) or not isinstance(value, Real) or \
            not math.isfinite(value) or value < 0 or \
            (value == 0 and not allow_zero):
        bound = '>= 0' if allow_zero else '> 0'
        raise ValueError(f'simulate_stream: {name} must be a finite number '
                         f'{bound}, but got {value!r}')
    return exact_time(value)


def simulate_stream(num_frames: int,
                    fps: Union[float, Fraction] = 30.0,
                    runtime: Optional[RuntimeModel] = None,
                    *,
                    detector: Optional[Callable[[Any], Any]] = None,
                    frame_loader: Optional[Callable[[int], Any]] = None,
                    perf_factor: float = 1.0,
                    end_time: Optional[float] = None) -> StreamSchedule:
    """Replay a ``num_frames`` stream at ``fps`` through one detector.

    See the module docstring for the stream model. The latency model is
    ``runtime``; a ``detector``, when given, is run on every frame the
    simulation picks (its outputs are collected) and, without a latency
    model, its measured runtime drives the clock::

        runtime=0.05                   constant 50 ms per frame
        runtime=[...] (num_frames)     runtime of processing frame i
        runtime=None, detector=fn      measured: perf_counter around fn(x)
        runtime=fn                     same as detector=fn, runtime=None
        runtime=0.05, detector=fn      fn is run (outputs kept), the clock
                                       uses 50 ms (reproducible replays)

    Every number is read exactly by :func:`exact_time` (``1.5 / 30`` is
    1/20 s) and the clock is exact; pass :class:`~fractions.Fraction`
    values for rates or runtimes that are not the nearest float of a
    fraction with a denominator up to ``10**6``.

    Args:
        num_frames (int): Frames in the stream (frame i arrives at i / fps).
        fps (float | Fraction): Frame rate. Defaults to 30 (Argoverse-HD).
        runtime (float | Fraction | Sequence | callable, optional): Latency
            model in seconds, see above.
        detector (callable, optional): Called as ``detector(x)`` with
            ``x = frame_loader(fidx)`` (or ``fidx`` without a loader).
        frame_loader (callable, optional): ``fidx -> frame``, called before
            the detector and *not* timed (the camera delivers the frame).
        perf_factor (float): Speed factor, runtimes are divided by it
            (sap-toolkit's ``--perf-factor``). Defaults to 1.
        end_time (float, optional): End of the stream in seconds; outputs
            finishing at or after it are discarded. Defaults to
            ``num_frames / fps``.

    Returns:
        StreamSchedule: Picked frames, start and finish times (exact and
        rounded to float64), dropped frames and (with a detector) the
        outputs.

    Raises:
        ValueError: Bad ``num_frames``/``fps``/``perf_factor``/``end_time``,
            a per-frame runtime list of the wrong length, or a negative or
            non-finite runtime (naming the frame).
        TypeError: ``runtime`` is of an unsupported type.

    Examples:
        >>> s = simulate_stream(8, 30, runtime=1.5 / 30)
        >>> s.input_fids.tolist(), s.dropped_fids.tolist()
        ([0, 1, 3, 4, 6], [2, 5, 7])
    """
    if isinstance(num_frames, bool) or not isinstance(
            num_frames, (int, np.integer)) or num_frames < 0:
        raise ValueError('simulate_stream: num_frames must be an int >= 0, '
                         f'but got {num_frames!r}')
    num_frames = int(num_frames)
    fps_q = _check_positive(fps, 'fps')
    speed = _check_positive(perf_factor, 'perf_factor')
    end = num_frames / fps_q if end_time is None else _check_positive(
        end_time, 'end_time', allow_zero=True)

    if callable(runtime):
        if detector is not None:
            raise ValueError('simulate_stream: give the detector either as '
                             '`runtime` (a callable) or as `detector`, not '
                             'both')
        detector, runtime = runtime, None
    per_frame = None
    if runtime is None:
        if detector is None:
            raise ValueError('simulate_stream: give a latency model '
                             '(`runtime` seconds, constant or per frame) or '
                             'a `detector` whose runtime is measured')
    elif isinstance(runtime, Real) and not isinstance(runtime, bool):
        _check_positive(runtime, 'runtime', allow_zero=True)
    elif isinstance(runtime, (Sequence, np.ndarray)) and \
            not isinstance(runtime, str):
        shape = np.shape(runtime)
        if shape != (num_frames, ):
            raise ValueError(
                'simulate_stream: a per-frame runtime list needs one value '
                f'per frame, shape ({num_frames},), but got shape {shape}')
        # kept as given (not as float64): Fractions stay exact
        per_frame = list(runtime.tolist() if isinstance(runtime, np.ndarray)
                         else runtime)
        bad = [v for v in per_frame
               if isinstance(v, bool) or not isinstance(v, Real)]
        if bad:
            raise TypeError('simulate_stream: a per-frame runtime list must '
                            f'hold numbers of seconds, but got {bad[0]!r}')
    else:
        raise TypeError('simulate_stream: runtime must be a number, a '
                        'sequence of per-frame numbers or a callable, but '
                        f'got {type(runtime).__name__}')

    fids, starts, finishes, runtimes, measured = [], [], [], [], []
    outputs = []
    t, last = Fraction(0), -1
    # one iteration per processing step (sequential by nature: each start
    # depends on the previous finish); all times are exact Fractions
    while t < end:
        fidx = math.floor(t * fps_q)
        if fidx <= last:
            # faster than the camera: wait for the next frame
            fidx = last + 1
            t = fidx / fps_q
            if t >= end:
                break
        if fidx >= num_frames:
            break
        last = fidx

        output, took = None, None
        if detector is not None:
            x = frame_loader(fidx) if frame_loader is not None else fidx
            tic = time.perf_counter()
            output = detector(x)
            took = time.perf_counter() - tic
        if runtime is None:
            value = took
        elif per_frame is not None:
            value = per_frame[fidx]
        else:
            value = runtime
        if not math.isfinite(value) or value < 0:
            raise ValueError(f'simulate_stream: the runtime of frame {fidx} '
                             f'must be a finite number >= 0, but got {value}')
        step = exact_time(value) / speed
        finish = t + step
        if finish >= end:
            break  # the output would come at or after the end of the stream
        fids.append(fidx)
        starts.append(t)
        finishes.append(finish)
        runtimes.append(step)
        measured.append(took)
        outputs.append(output)
        t = finish

    ran = detector is not None
    return StreamSchedule(
        input_fids=np.asarray(fids, dtype=np.int64),
        start_times=np.asarray([float(v) for v in starts], dtype=np.float64),
        finish_times=np.asarray([float(v) for v in finishes],
                                dtype=np.float64),
        runtimes=np.asarray([float(v) for v in runtimes], dtype=np.float64),
        num_frames=num_frames,
        fps=float(fps),
        measured_runtimes=np.asarray(measured, dtype=np.float64)
        if ran else None,
        outputs=outputs if ran else None,
        exact_start_times=tuple(starts),
        exact_finish_times=tuple(finishes),
        exact_fps=fps_q)
