"""densekit.apis.stream_video: a video replayed in simulated real time, the
output shown at every frame checked by hand."""
import cv2
import numpy as np
import pytest

from densekit.apis.stream_video import (count_video_frames, displayed_outputs,
                                        replay_video_stream)
from densekit.evaluation.functional import simulate_stream

FPS = 10


@pytest.fixture(scope='module')
def video(tmp_path_factory):
    """6 frames at 10 FPS, frame i filled with grey level 40 * i."""
    path = str(tmp_path_factory.mktemp('video') / 'grey.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), FPS,
                             (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


class GreyDetector:
    """Reports the grey level of the frame it saw as its one 'score'."""

    def __init__(self):
        self.calls, self.resets = [], 0

    def reset(self):
        self.resets += 1

    def __call__(self, frame, info):
        self.calls.append(info['fid'])
        return float(frame.mean())


def test_displayed_outputs_hand_case():
    # runtime 1.5 frames: picks 0, 1, 3 finishing at 1.5, 3, 4.5 frames;
    # frame 4's output would finish at 6 >= 5 (the end): discarded
    schedule = simulate_stream(5, FPS, 1.5 / FPS)
    assert schedule.input_fids.tolist() == [0, 1, 3]
    # frames 0, 1: nothing finished; 2: output 0; 3: output 1 (finishes
    # exactly at frame 3's arrival: shown); 4: output 1 (output 2 at 4.5)
    assert displayed_outputs(schedule).tolist() == [-1, -1, 0, 1, 1]


def test_replay_reads_the_picked_frames(video):
    assert count_video_frames(video) == 6
    assert count_video_frames(video, limit=4) == 4
    det = GreyDetector()
    replay = replay_video_stream(det, video, FPS, fixed_runtime=1.5 / FPS)
    # warm-up call on frame 0, then the replay after one reset; frame 4's
    # output would finish at 6 frames, the end of the stream: discarded
    assert det.resets == 1
    assert det.calls == [0, 0, 1, 3, 4]
    sched = replay.schedule
    assert sched.input_fids.tolist() == [0, 1, 3]
    # the detector saw frame i (mp4v is lossy: grey levels within a few)
    np.testing.assert_allclose(sched.outputs, [0, 40, 120], atol=4)
    assert replay.shown.tolist() == [-1, -1, 0, 1, 1, 2]
    assert replay.latency_ms(2) == pytest.approx(150.0)


def test_replay_errors(video, tmp_path):
    with pytest.raises(ValueError, match='fps'):
        replay_video_stream(GreyDetector(), video, 0)
    empty = str(tmp_path / 'none.mp4')
    with pytest.raises(ValueError, match='none.mp4'):
        replay_video_stream(GreyDetector(), empty, FPS)
