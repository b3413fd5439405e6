"""Simulated real-time streaming (sap-toolkit ``srt_det.py`` schedule)."""
import time
from fractions import Fraction

import numpy as np
import pytest

from densekit.evaluation.functional import simulate_stream
from densekit.evaluation.functional.stream_simulation import exact_time

FPS = 30.0
DT = 1.0 / FPS


def test_one_and_a_half_frame_runtime_drops_every_third_frame():
    # hand schedule (in frame intervals): start 0, 1.5, 3, 4.5, 6, 7.5;
    # picks floor(start): 0, 1, 3, 4, 6, 7; frame 7's output would finish at
    # 9 >= 8 (end of the 8-frame stream) and is discarded.
    s = simulate_stream(8, FPS, 1.5 * DT)
    assert s.input_fids.tolist() == [0, 1, 3, 4, 6]
    np.testing.assert_allclose(s.start_times * FPS, [0, 1.5, 3, 4.5, 6])
    np.testing.assert_allclose(s.finish_times * FPS, [1.5, 3, 4.5, 6, 7.5])
    np.testing.assert_allclose(s.runtimes, 1.5 * DT)
    assert s.dropped_fids.tolist() == [2, 5, 7]
    assert s.num_dropped == 3 and s.num_processed == 5
    # latency = finish - arrival of the input frame: 1.5 or 2 frames
    np.testing.assert_allclose(s.latencies * FPS, [1.5, 2, 1.5, 2, 1.5])
    assert s.outputs is None and s.measured_runtimes is None


def test_fast_detector_waits_for_each_frame():
    s = simulate_stream(5, FPS, 0.5 * DT)
    assert s.input_fids.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(s.start_times * FPS, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(s.finish_times * FPS, [.5, 1.5, 2.5, 3.5, 4.5])
    assert s.num_dropped == 0


def test_zero_runtime_finishes_at_arrival():
    s = simulate_stream(4, FPS, 0.0)
    assert s.input_fids.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(s.finish_times * FPS, [0, 1, 2, 3])


def test_exact_one_frame_runtime_is_robust_to_round_off():
    # 5/30 + 1/30 < 6/30 in floating point; the frame arriving as the
    # detector gets idle is still taken and the last output (finishing at
    # the end of the stream) is discarded
    s = simulate_stream(6, FPS, DT)
    assert s.input_fids.tolist() == [0, 1, 2, 3, 4]
    assert s.dropped_fids.tolist() == [5]


def test_two_frame_runtime_and_perf_factor():
    s = simulate_stream(7, FPS, 2 * DT)
    assert s.input_fids.tolist() == [0, 2, 4]
    assert s.dropped_fids.tolist() == [1, 3, 5, 6]
    # perf_factor is a speed factor (sap-toolkit: runtime / perf_factor)
    fast = simulate_stream(8, FPS, 3 * DT, perf_factor=2.0)
    assert fast.input_fids.tolist() == [0, 1, 3, 4, 6]
    np.testing.assert_allclose(fast.runtimes, 1.5 * DT)


def test_per_frame_runtimes():
    # frame 1 takes 3 intervals: start 0 (f0, 1), 1 (f1, 3) -> 4 (f4, 1)
    # -> 5 (f5) would finish at 6 = end: discarded
    s = simulate_stream(6, FPS, np.array([1, 3, 1, 1, 1, 1]) * DT)
    assert s.input_fids.tolist() == [0, 1, 4]
    np.testing.assert_allclose(s.finish_times * FPS, [1, 4, 5])


def test_end_time_extends_the_stream():
    # 2 input frames, but the stream lasts 4 frame intervals
    s = simulate_stream(2, FPS, 1.5 * DT, end_time=4 * DT)
    assert s.input_fids.tolist() == [0, 1]
    np.testing.assert_allclose(s.finish_times * FPS, [1.5, 3])


def test_detector_outputs_and_fixed_clock():
    loaded = []

    def loader(fid):
        loaded.append(fid)
        return fid * 10

    s = simulate_stream(8, FPS, 1.5 * DT, detector=lambda x: x + 1,
                        frame_loader=loader)
    # the fixed clock decides the schedule; the detector runs on each pick
    assert s.input_fids.tolist() == [0, 1, 3, 4, 6]
    assert s.outputs == [1, 11, 31, 41, 61]
    # frame 7 was picked and run, its output came too late
    assert loaded == [0, 1, 3, 4, 6, 7]
    assert s.measured_runtimes.shape == (5, )
    assert (s.measured_runtimes >= 0).all()


def test_measured_runtime_drives_the_clock():
    def slow(fid):
        time.sleep(0.06)  # > 1.5 frame intervals
        return fid

    s = simulate_stream(4, FPS, slow)
    assert (s.measured_runtimes >= 0.06).all()
    np.testing.assert_allclose(s.runtimes, s.measured_runtimes)
    np.testing.assert_allclose(s.finish_times - s.start_times, s.runtimes)
    assert s.input_fids[0] == 0 and 0 < len(s.input_fids) <= 2
    assert s.outputs == s.input_fids.tolist()


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_frames=-1, runtime=0.1), 'num_frames'),
    (dict(num_frames=4, fps=0, runtime=0.1), 'fps'),
    (dict(num_frames=4, runtime=-0.1), 'runtime'),
    (dict(num_frames=4, runtime=0.1, perf_factor=0), 'perf_factor'),
    (dict(num_frames=4, runtime=[0.1, 0.1]), r'shape \(4,\)'),
    (dict(num_frames=4), 'latency model'),
    (dict(num_frames=3, runtime=[0.01, float('nan'), 0.01]), 'frame 1'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_stream(**kwargs)


def test_bad_runtime_type():
    with pytest.raises(TypeError, match='runtime must be'):
        simulate_stream(4, FPS, 'fast')


def official_srt_schedule(n_frame, fps, runtime):
    """sap-toolkit ``det/srt_det.py``'s loop (constant runtime, no dynamic
    schedule, no det_stride) on its float clock: ``(input_fidx,
    timestamps)``."""
    t_total = n_frame / fps
    t_elapsed = 0
    last_fidx = None
    input_fidx, timestamps = [], []
    while 1:
        if t_elapsed >= t_total:
            break
        fidx = int(np.floor(t_elapsed * fps))
        if fidx == last_fidx:
            fidx += 1
            if fidx == n_frame:
                break
            t_elapsed = fidx / fps
        last_fidx = fidx
        t_elapsed += runtime
        if t_elapsed >= t_total:
            break
        timestamps.append(t_elapsed)
        input_fidx.append(fidx)
    return input_fidx, timestamps


def test_exact_clock_where_the_float_clock_drifts():
    # runtime 1.5 frame intervals over 24 frames, by hand: step k starts at
    # 1.5 k, picks floor(1.5 k) and finishes at 1.5 (k + 1) < 24, k <= 14
    hand_picks = [int(1.5 * k) for k in range(15)]
    assert hand_picks[8:11] == [12, 13, 15]
    s = simulate_stream(24, FPS, 1.5 * DT)
    assert s.input_fids.tolist() == hand_picks
    assert s.exact_fps == 30
    assert list(s.exact_finish_times) == [
        Fraction(3 * (k + 1), 2 * 30) for k in range(15)]
    # the same runtime as an exact Fraction gives the same schedule
    exact = simulate_stream(24, Fraction(30), Fraction(1, 20))
    assert exact.exact_finish_times == s.exact_finish_times
    # the official float clock (t_elapsed += 0.05) ends step 8 just below
    # frame 12 and picks frame 11 there
    official_picks, stamps = official_srt_schedule(24, FPS, 1.5 * DT)
    moved = [(k, o, h) for k, (o, h) in enumerate(zip(official_picks,
                                                      hand_picks)) if o != h]
    print(f'official float clock: picks differing from the exact ones '
          f'(step, official, exact): {moved}')
    assert moved and moved[0] == (8, 11, 12)
    # float round-off of the clock: max |float sum - exact| in seconds
    drift = max(abs(Fraction(t) - Fraction(3 * (k + 1), 60))
                for k, t in enumerate(stamps[:8]))
    print(f'max float-clock drift over the first 8 steps: {float(drift):.3e}'
          ' s')
    assert 0 < drift < 1e-15


def test_exact_time_reads_floats_as_their_fractions():
    assert exact_time(1 / 30) == Fraction(1, 30)
    assert exact_time(1.5 / 30) == Fraction(1, 20)
    assert exact_time(np.float64(6 / 30)) == Fraction(1, 5)
    assert exact_time(3) == 3 and exact_time(Fraction(2, 7)) == Fraction(2, 7)
    # the next float above 0.2 is not 1/5: its exact value, above 1/5
    above = np.nextafter(0.2, 1.0)
    assert exact_time(above) == Fraction(float(above)) > Fraction(1, 5)
    # a measured runtime stays its exact binary value
    assert exact_time(0.0123456789123) == Fraction(0.0123456789123)
    with pytest.raises(ValueError, match='finite'):
        exact_time(float('inf'))
    with pytest.raises(TypeError, match='real number'):
        exact_time('0.1')
