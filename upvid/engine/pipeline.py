"""Decode, inference and encode in three threads joined by bounded queues.

The decoder thread fills a queue of LR frames, the calling thread runs the :class:`Engine`,
and the encoder thread drains a queue of HR frames. Queues are bounded, so memory stays
bounded and the slowest stage sets the pace while the others overlap with it (PyAV and
PyTorch release the GIL in their heavy loops). An error in any stage stops all three and
is re-raised in the caller; so is KeyboardInterrupt.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from upvid.engine.upscale import Engine, queue_size as default_queue_size
from upvid.frames import Yuv420

if TYPE_CHECKING:
    from upvid.engine.shots import CutFinder

_END = object()


class Frame(Protocol):
    picture: np.ndarray | Yuv420
    pts: int | None


@dataclass
class PipelineStats:
    """Wall-clock seconds per stage and totals.

    Attributes:
        decode_s: time inside the decoder (thread).
        model_s: time inside the model calls (tiles included).
        stitch_s: time blending tiles/clips and converting to integers.
        encode_s: time inside the encoder/muxer (thread).
        total_s: end-to-end wall time.
        frames: frames written.
        oom_retries: out-of-memory back-offs.
    """

    decode_s: float = 0.0
    model_s: float = 0.0
    stitch_s: float = 0.0
    encode_s: float = 0.0
    total_s: float = 0.0
    frames: int = 0
    oom_retries: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.total_s if self.total_s else 0.0


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def run_pipeline(
    source: Iterable[Frame],
    engine: Engine,
    sink: Callable[[np.ndarray, int | None], None],
    *,
    queue_size: int | None = None,
    on_frame: Callable[[int], None] | None = None,
    cuts: CutFinder | None = None,
    first: int = 0,
    origin: int = 0,
) -> PipelineStats:
    """Stream ``source`` through ``engine`` into ``sink``.

    Args:
        source: decoded frames (``.picture``: ``(H, W, 3)`` uint8/uint16 RGB or a
            :class:`~upvid.frames.Yuv420`; ``.pts`` int or None), in order.
        engine: the configured engine.
        sink: called as ``sink(hr_rgb, pts)`` for each output frame, in order, from the encoder thread.
        queue_size: bound of each queue in frames (default: :func:`upvid.engine.upscale.queue_size`).
        on_frame: progress callback with the number of frames written so far.
        cuts: scene cuts, found as the engine reads the frames (see :meth:`Engine.run`).
        first: index of the first frame of ``source`` in the video.
        origin: its position in its shot's recurrent clip schedule (:meth:`Engine.run`).

    Returns:
        :class:`PipelineStats`.

    Raises:
        Whatever a stage raised (the first error), or KeyboardInterrupt.
    """
    size = queue_size or default_queue_size(engine.cfg)
    q_in: queue.Queue = queue.Queue(maxsize=size)
    q_out: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()
    stats = PipelineStats()
    errors: list[BaseException] = []
    t_start = time.perf_counter()

    def decode() -> None:
        it = iter(source)
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                stats.decode_s += time.perf_counter() - t0
                if not _put(q_in, item, stop):
                    return
            _put(q_in, _END, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            _put(q_in, _Failure(e), stop)

    def encode() -> None:
        try:
            while True:
                try:
                    item = q_out.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                if item is _END:
                    return
                t0 = time.perf_counter()
                sink(*item)
                stats.encode_s += time.perf_counter() - t0
                stats.frames += 1
                if on_frame is not None:
                    on_frame(stats.frames)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()

    pts_queue: deque[int | None] = deque()

    def lr_frames() -> Iterator[np.ndarray]:
        while True:
            try:
                item = q_in.get(timeout=0.1)
            except queue.Empty:
                if errors:
                    raise errors[0] from None
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            pts_queue.append(item.pts)
            yield item.picture  # RGB, or on the GPU path the 4:2:0 planes the engine converts

    threads = [threading.Thread(target=decode, name="upvid-decode", daemon=True),
               threading.Thread(target=encode, name="upvid-encode", daemon=True)]
    for t in threads:
        t.start()
    try:
        for hr in engine.run(lr_frames(), cuts, first, origin):
            if not _put(q_out, (hr, pts_queue.popleft()), stop):
                break
        if not errors:
            _put(q_out, _END, stop)
            threads[1].join()
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    if errors:
        raise errors[0]
    stats.model_s = engine.times.model_s
    stats.stitch_s = engine.times.stitch_s
    stats.oom_retries = engine.times.oom_retries
    stats.total_s = time.perf_counter() - t_start
    return stats
