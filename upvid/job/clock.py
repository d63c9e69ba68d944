"""Frame numbers and times of the frames a job hands to the engine (for cut files and previews)."""

from __future__ import annotations

import dataclasses

from upvid.io.probe import VideoInfo


class FrameClock:
    """Numbers the frames handed to the engine from 0 (a preview's first frame is 0) and notes
    each one's time and input frame number, for cut files; for a preview it moves the video's
    timestamps to start at 0 and records the input window ``[t0, t1)`` for the audio.
    Entries far behind are dropped, so it stays small."""

    def __init__(self, info: VideoInfo, shift: bool) -> None:
        self.info, self.shift = info, shift
        self.times: dict[int, float] = {}    # output frame -> seconds from the video's start
        self.numbers: dict[int, int] = {}    # output frame -> input frame number
        self.window: tuple[float, float] | None = None

    def renumber(self, frames):
        info, tb = self.info, self.info.time_base
        pts0 = None
        step = 1 / float(info.fps or 25)
        for k, f in enumerate(frames):
            t = float(f.pts * tb) - info.start_time if f.pts is not None and tb else f.index * step
            self.times[k], self.numbers[k] = t, f.index
            self.times.pop(k - 1000, None)
            self.numbers.pop(k - 1000, None)
            if self.shift:
                if pts0 is None:
                    pts0 = f.pts if f.pts is not None else 0
                    t0 = t + info.start_time
                self.window = (t0, t + info.start_time + step)
                yield dataclasses.replace(f, index=k, pts=None if f.pts is None else f.pts - pts0)
            else:
                yield dataclasses.replace(f, index=k) if f.index != k else f
