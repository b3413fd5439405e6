"""Simulated real-time replay of a detector over a video file.

The video counterpart of :func:`~densekit.apis.run_stream_replay`: frames
arrive at the video's frame rate, the detector (a
:class:`~densekit.apis.FrameDetector`) always takes the latest arrived frame
and frames it cannot keep up with are dropped
(:func:`~densekit.evaluation.functional.simulate_stream`). What a real-time
system *shows* at frame i is the latest output finished by ``i / fps``
(:func:`displayed_outputs`, the pairing rule of streaming AP), so a slow or
non-forecasting detector visibly lags behind moving objects.

::

    replay_video_stream():  pass 1, forward-only reads of the picked frames
                            -> simulate_stream(detector) -> VideoStreamReplay
    displayed_outputs():    frame i -> index of the output shown (or -1)
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

from densekit.evaluation.functional.stream_simulation import (StreamSchedule,
                                                              simulate_stream)
from densekit.evaluation.functional.streaming_ap import pair_stream_predictions

__all__ = [
    'VideoStreamReplay', 'count_video_frames', 'displayed_outputs',
    'replay_video_stream'
]



@dataclass
class VideoStreamReplay:
    """A video replayed in simulated real time.

    Attributes:
        schedule (StreamSchedule): Picked frames, finish times and outputs.
        shown (np.ndarray): int64 (num_frames, ): index into
            ``schedule.outputs`` of the output shown at each frame, -1 before
            the first output.
        fps (float): The stream's frame rate.
    """
    schedule: StreamSchedule
    shown: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return self.schedule.num_frames

    def latency_ms(self, output_index: int) -> float:
        """End-to-end latency of an output: its input frame's arrival to
        its finish, in milliseconds."""
        return float(self.schedule.latencies[output_index] * 1e3)


def displayed_outputs(schedule: StreamSchedule) -> np.ndarray:
    """Index of the latest output finished by each frame's arrival.

    The pairing of streaming AP (:func:`~densekit.evaluation.functional.
    pair_stream_predictions`) on the schedule's exact times: an output
    finishing exactly at a frame's arrival is shown with it.

    Returns:
        np.ndarray: int64 (num_frames, ); -1 where no output was finished.
    """
    fps = schedule.exact_fps
    if fps is None:  # a schedule built by hand: its float times
        return pair_stream_predictions(
            np.arange(schedule.num_frames) / schedule.fps,
            schedule.finish_times)
    return pair_stream_predictions(
        [fid / fps for fid in range(schedule.num_frames)],
        schedule.exact_finish_times)


class _ForwardFrameReader:
    """``fid -> frame`` for increasing fids of one ``cv2.VideoCapture``,
    skipping the frames in between with ``grab`` (no decoding)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.capture = cv2.VideoCapture(path)
        self.next_fid = 0
        self.size = None

    def __call__(self, fid: int) -> np.ndarray:
        if fid < self.next_fid:
            raise ValueError(f'{self.path}: frame {fid} requested after '
                             f'frame {self.next_fid - 1} (forward only)')
        while self.next_fid < fid:
            if not self.capture.grab():
                raise ValueError(f'{self.path}: the video ends before frame '
                                 f'{fid}')
            self.next_fid += 1
        ok, frame = self.capture.read()
        if not ok:
            raise ValueError(f'{self.path}: cannot decode frame {fid}')
        self.next_fid += 1
        if self.size is None:
            self.size = frame.shape[:2]
        elif frame.shape[:2] != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]))
        return frame

    def close(self) -> None:
        self.capture.release()


def count_video_frames(path: str, limit: Optional[int] = None) -> int:
    """Frames that actually decode-grab from the start (the container's
    frame count is often missing or wrong), at most ``limit``."""
    capture = cv2.VideoCapture(path)
    count = 0
    try:
        while (limit is None or count < limit) and capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def replay_video_stream(detector: Callable[[np.ndarray, dict], object],
                        video: str,
                        fps: float,
                        *,
                        num_frames: Optional[int] = None,
                        fixed_runtime: Optional[float] = None,
                        perf_factor: float = 1.0,
                        warmup: int = 1) -> VideoStreamReplay:
    """Run ``detector`` over ``video`` as a real-time stream at ``fps``.

    Args:
        detector (callable): ``detector(frame_bgr, frame_info)``, e.g. a
            :class:`~densekit.apis.FrameDetector` (its ``reset`` is called
            before the replay when it has one); ``frame_info`` carries
            ``img_id``, ``sid`` (0) and ``fid``.
        video (str): Video file.
        fps (float): Frame rate of the stream.
        num_frames (int, optional): Frames in the stream; counted from the
            file when None.
        fixed_runtime (float, optional): Seconds per frame for the clock
            instead of the measured runtime.
        perf_factor (float): Speed factor (runtimes are divided by it).
        warmup (int): Untimed calls on the first frame before the replay.

    Returns:
        VideoStreamReplay: the schedule (outputs = detector returns) and
        the output shown at every frame.
    """
    if num_frames is None:
        num_frames = count_video_frames(video)
    if num_frames < 1:
        raise ValueError(f'{video}: no decodable frame')
    if not (isinstance(fps, (int, float)) and math.isfinite(fps)
            and fps > 0):
        raise ValueError(f'replay_video_stream: fps must be > 0, got {fps!r}')
    reset = getattr(detector, 'reset', None)
    if warmup > 0:
        first = _ForwardFrameReader(video)
        try:
            frame = first(0)
        finally:
            first.close()
        for _ in range(int(warmup)):
            detector(frame, dict(img_id=0, sid=0, fid=0))
    if callable(reset):
        reset()
    reader = _ForwardFrameReader(video)
    try:
        schedule = simulate_stream(
            num_frames, fps, fixed_runtime,
            detector=lambda item: detector(*item),
            frame_loader=lambda fid: (reader(fid),
                                      dict(img_id=fid, sid=0, fid=fid)),
            perf_factor=perf_factor)
    finally:
        reader.close()
    return VideoStreamReplay(schedule=schedule,
                             shown=displayed_outputs(schedule),
                             fps=float(fps))

