"""Scene cuts: find them in the decoded LR stream, and split the stream into shots at them.

A shot is the run of frames between two cuts. The engine upscales each shot as if it were a
whole video of its own (:meth:`upvid.engine.Engine.run`), so no recurrent state, sliding window
or clip cross-fade ever crosses a cut: a recurrent model starts a new clip at the cut, and a
sliding window is padded at the cut in the model's own temporal padding mode, exactly as at
the ends of the sequence.

Cuts come from a :class:`CutFinder`:

- :class:`DetectedCuts`: PySceneDetect's detectors (``scenedetect``; Castellano, BSD-3-Clause)
  fed the decoded frames directly, one at a time. A detector may confirm a cut up to
  ``lag`` frames after it (PySceneDetect's flash filter), so :func:`split_shots` holds back
  that many frames: memory stays bounded by ``lag`` frames, never by the video's length.
- :class:`ListedCuts`: cuts read from a file (:func:`read_cut_file`): frame numbers, timestamps,
  or PySceneDetect's scene-list CSV.

A cut is the index of the first frame of a new shot (``0 < c``), in the input's frame numbering.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from upvid.errors import UsageError
from upvid.frames import Yuv420
from upvid.io.span import parse_time

DETECTORS = ("content", "adaptive")
#: Width in px the frames are shrunk to before detection (PySceneDetect's own auto-downscale
#: target is about this); the score is a mean over pixels, so it barely moves, and the cost drops.
DETECT_WIDTH = 256


class CutFinder:
    """Finds cuts in a stream fed one frame at a time, in order.

    Attributes:
        lag: how many frames after a cut it may be reported (0: at the cut's own frame).
        found: every cut reported so far, ascending.
    """

    lag: int = 0

    def __init__(self) -> None:
        self.found: list[int] = []

    def feed(self, index: int, picture: Any) -> list[int]:
        """Take frame ``index`` (``(H, W, 3)`` uint8/uint16 RGB or :class:`Yuv420`).

        Returns:
            Cuts confirmed by this frame (ascending, each in ``(index - lag, index]``).
        """
        cuts = [c for c in self._feed(index, picture) if c > 0 and (not self.found or c > self.found[-1])]
        self.found += cuts
        return cuts

    def _feed(self, index: int, picture: Any) -> list[int]:
        raise NotImplementedError


class ListedCuts(CutFinder):
    """Cuts known in advance: frame numbers, or times in seconds resolved to the first frame
    shown at or after that time (``time_of(index)`` gives each frame's presentation time).

    Args:
        frames: cut frame numbers.
        times: cut times in seconds from the start of the video.
        time_of: frame index -> presentation time in seconds (needed when ``times`` is given).
        frame_of: stream index -> the frame's number in the whole video (a preview's stream
            starts later; cut files number the whole video). Default: the same.
    """

    def __init__(self, frames: Iterable[int] = (), times: Iterable[float] = (),
                 time_of: Callable[[int], float | None] | None = None,
                 frame_of: Callable[[int], int | None] | None = None) -> None:
        super().__init__()
        self.frames = set(int(f) for f in frames)
        self.times = deque(sorted(times))
        self.time_of = time_of
        self.frame_of = frame_of

    def _feed(self, index: int, picture: Any) -> list[int]:
        number = self.frame_of(index) if self.frame_of is not None else index
        hit = (index if number is None else number) in self.frames
        if self.times and self.time_of is not None:
            t = self.time_of(index)
            if t is not None:
                while self.times and self.times[0] <= t + 1e-6:
                    self.times.popleft()
                    hit = True
        return [index] if hit else []


class DetectedCuts(CutFinder):
    """PySceneDetect's ``ContentDetector`` (HSV frame difference, the default) or
    ``AdaptiveDetector`` (the same score relative to its neighbours'), fed LR frames.

    Args:
        detector: ``"content"`` or ``"adaptive"``.
        fps: the video's frame rate (PySceneDetect's timecodes need one; cuts are frame numbers).
        threshold: the detector's threshold (default: PySceneDetect's, 27 for content, 3 for adaptive).
        min_scene_len: shortest shot in frames (PySceneDetect's default 15).

    Raises:
        UsageError: unknown detector.
    """

    def __init__(self, detector: str = "content", fps: float = 25.0, threshold: float | None = None,
                 min_scene_len: int = 15) -> None:
        super().__init__()
        from scenedetect.detectors import AdaptiveDetector, ContentDetector

        if detector == "content":
            self.detector = ContentDetector(min_scene_len=min_scene_len,
                                            **({"threshold": threshold} if threshold is not None else {}))
        elif detector == "adaptive":
            self.detector = AdaptiveDetector(min_scene_len=min_scene_len,
                                             **({"adaptive_threshold": threshold} if threshold is not None else {}))
        else:
            raise UsageError(f"scene detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
        self.fps = float(fps) if fps and fps > 0 else 25.0
        import cv2

        cv2.setNumThreads(1)  # OpenCV's own thread pool would compete with the model's threads
        self.lag = int(getattr(self.detector, "event_buffer_length", min_scene_len)) + 1

    def _feed(self, index: int, picture: Any) -> list[int]:
        from scenedetect import FrameTimecode

        tc = FrameTimecode(index, fps=self.fps)
        return [int(c.frame_num) for c in self.detector.process_frame(tc, detection_image(picture))]


def detection_image(picture: Any) -> np.ndarray:
    """The BGR uint8 image PySceneDetect expects, at most :data:`DETECT_WIDTH` px wide.

    Args:
        picture: ``(H, W, 3)`` uint8/uint16 RGB, or :class:`Yuv420` (converted with OpenCV's I420 rule).
    """
    import cv2

    if isinstance(picture, Yuv420):
        bgr = cv2.cvtColor(np.ascontiguousarray(picture.planes), cv2.COLOR_YUV2BGR_I420)
    else:
        rgb = picture if picture.dtype == np.uint8 else (picture >> 8).astype(np.uint8)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
    h, w = bgr.shape[:2]
    if w > DETECT_WIDTH:
        bgr = cv2.resize(bgr, (DETECT_WIDTH, max(1, round(h * DETECT_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return bgr


def split_shots(frames: Iterable[Any], finder: CutFinder, first: int = 0) -> Iterator[Iterator[Any]]:
    """Split a frame stream into shots at the cuts ``finder`` reports.

    Args:
        frames: pictures in order; the first has index ``first`` (a resumed job starts later).
        finder: the cut source; its ``lag`` is how far the reading runs ahead of the shots.
        first: index of the first frame.

    Yields:
        One iterator per shot, lazily; each must be exhausted before the next is taken (the
        engine runs shots one after another). At most ``finder.lag + 1`` frames are held.
    """
    it = iter(frames)
    held: deque[tuple[int, Any]] = deque()
    cuts: deque[int] = deque()
    state = {"next": first, "done": False}

    def pull() -> bool:
        """Read one more frame into ``held``; False at the end of the input."""
        if state["done"]:
            return False
        try:
            pic = next(it)
        except StopIteration:
            state["done"] = True
            return False
        i = state["next"]
        state["next"] += 1
        cuts.extend(c for c in finder.feed(i, pic) if c > first)
        held.append((i, pic))
        return True

    def releasable() -> bool:
        """The oldest held frame can no longer be preceded by an unreported cut."""
        return bool(held) and (state["done"] or held[0][0] < state["next"] - finder.lag)

    def shot() -> Iterator[Any]:
        while True:
            while not releasable() and pull():
                pass
            if not held:
                return
            i, pic = held[0]
            if cuts and cuts[0] <= i:
                return  # the next shot starts here
            held.popleft()
            yield pic

    while True:
        while not held and pull():
            pass
        if not held:
            return
        while cuts and cuts[0] <= held[0][0]:
            cuts.popleft()  # the cut that starts this shot
        s = shot()
        yield s
        for _ in s:  # a consumer that stopped early: skip the rest of its shot
            pass


def read_cut_file(path: Path) -> tuple[list[int], list[float]]:
    """Read cuts from a file: one per line, a frame number (``120``) or a timestamp
    (``00:01:02.500``, ``62.5s``, ``1:02.5``); or PySceneDetect's scene-list CSV
    (``scenedetect ... list-scenes``), whose scenes' start frames (1-based there) are the cuts.
    Blank lines and ``#`` comments are ignored.

    Returns:
        ``(frame numbers, times in seconds)``.

    Raises:
        UsageError: unreadable file, or a line that is neither a frame number nor a time.
    """
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--scene-cuts {path}: cannot read it ({e.strerror if isinstance(e, OSError) else e})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    if any("Start Frame" in ln for ln in lines[:3]):
        rows = [r for r in csv.reader(ln for ln in lines if ln) if r]
        head = next(k for k, r in enumerate(rows) if "Start Frame" in r)
        col = rows[head].index("Start Frame")
        frames = [int(r[col]) - 1 for r in rows[head + 1:] if len(r) > col and r[col].strip().isdigit()]
        return [f for f in frames if f > 0], []
    frames: list[int] = []
    times: list[float] = []
    for n, ln in enumerate(lines, 1):
        ln = ln.split("#", 1)[0].strip()
        if not ln:
            continue
        if ln.isdigit():
            frames.append(int(ln))
            continue
        try:
            times.append(parse_time(ln, "--scene-cuts"))
        except UsageError:
            raise UsageError(f"--scene-cuts {path}: line {n} is neither a frame number nor a time: {ln!r}") from None
    return frames, times


class ResumedCuts(CutFinder):
    """A resumed job's cuts: those its journal recorded up to ``upto`` (trusted, so the resumed
    run splits where the interrupted one did), then what ``inner`` finds after it. ``inner``
    still sees the frames before ``upto`` (the warm-up), so its state is primed."""

    def __init__(self, known: Iterable[int], upto: int, inner: CutFinder | None) -> None:
        super().__init__()
        self.known = {int(c) for c in known if c <= upto}
        self.upto = upto
        self.inner = inner
        self.lag = inner.lag if inner is not None else 0

    def _feed(self, index: int, picture: Any) -> list[int]:
        later = [c for c in self.inner.feed(index, picture) if c >= self.upto] if self.inner is not None else []
        return sorted(({index} if index in self.known else set()) | set(later))


def cut_finder(mode: str, family: str, frames: int, *, fps: float, detector: str = "content",
               threshold: float | None = None, time_of: Callable[[int], float | None] | None = None,
               frame_of: Callable[[int], int | None] | None = None) -> CutFinder | None:
    """The cut source of a job (``--scene-cuts``).

    Args:
        mode: ``"auto"`` (detect, for recurrent and sliding-window models), ``"off"``, or a file path.
        family, frames: the model's (per-frame models, ``frames == 1``, need no cuts: ``None``).
        fps: the video's frame rate; detector, threshold: see :class:`DetectedCuts`.
        time_of, frame_of: stream index -> time in seconds / input frame number, for cut files.

    Raises:
        UsageError: unreadable or malformed cut file, unknown detector.
    """
    if mode == "off" or (family != "recurrent" and frames <= 1):
        return None
    if mode == "auto":
        return DetectedCuts(detector, fps=fps, threshold=threshold)
    listed, times = read_cut_file(Path(mode))
    return ListedCuts(listed, times, time_of, frame_of)
