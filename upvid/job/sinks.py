"""Sinks: receive the output frames in order and write them as journaled segments (video) or PNG frames."""

from __future__ import annotations

import os
import time
from pathlib import Path

from upvid.engine.shots import CutFinder
from upvid.io.images import write_image
from upvid.io.probe import VideoInfo
from upvid.io.external import FfmpegWriter
from upvid.io.writer import VideoWriter
from upvid.job.options import JobOptions
from upvid.job.resume import Journal


class Sink:
    """Receives output frames (in order, with their pts) and writes them in journaled segments."""

    def __init__(self, journal: Journal, skip: int, segment_frames: int, segment_seconds: float) -> None:
        self.j = journal
        self.skip = skip  # warm-up outputs to drop
        self.index = journal.frames_done  # index of the next frame to write
        self.count = 0  # frames in the open segment
        self.seg_frames = max(1, segment_frames)
        self.seg_seconds = segment_seconds
        self.opened = 0.0
        self.cuts: CutFinder | None = None  # scene cuts: segments prefer them as ends
        self._cut_set: set[int] = set()
        self._seen = 0

    def __call__(self, rgb, pts) -> None:
        if self.skip > 0:
            self.skip -= 1
            return
        if self.count >= self.seg_frames // 2 and self._at_cut():
            self._roll()  # a segment that starts at a cut resumes without warm-up
        if self.count == 0:
            self._open()
            self.opened = time.monotonic()
        self._write(rgb, pts)
        self.index += 1
        self.count += 1
        if self.count >= self.seg_frames or time.monotonic() - self.opened >= self.seg_seconds:
            self._roll()

    def _at_cut(self) -> bool:
        if self.cuts is None or self.count == 0:
            return False
        found = self.cuts.found  # appended by the engine thread, which runs ahead of this one
        if len(found) != self._seen:
            self._cut_set.update(found[self._seen:])
            self._seen = len(found)
        return self.index in self._cut_set

    def _roll(self) -> None:
        if self.count == 0:
            return
        entry = self._close()
        entry.update(first=self.index - self.count, frames=self.count)
        self.j.segments.append(entry)
        self.j.frames_done = self.index
        if self.cuts is not None:
            self.j.cuts = [c for c in self.cuts.found if c <= self.index]
        self.count = 0
        self.j.save()

    def finish(self) -> None:
        self._roll()
        self.j.complete = True
        self.j.save()

    # subclass hooks
    def _open(self) -> None: ...
    def _write(self, rgb, pts) -> None: ...
    def _close(self) -> dict: return {}
    def abort(self) -> None: ...


class VideoSink(Sink):
    def __init__(self, journal: Journal, skip: int, opts: JobOptions, info: VideoInfo, out: Path, size: tuple[int, int],
                 codec: str, pix_fmt: str) -> None:
        super().__init__(journal, skip, opts.segment_frames, opts.segment_seconds)
        self.info, self.out, self.size = info, out, size
        self.codec, self.pix_fmt, self.crf, self.preset = codec, pix_fmt, opts.crf, opts.preset
        self.encoder = opts.encoder
        self.writer: VideoWriter | None = None
        self.file: Path | None = None

    def _open(self) -> None:
        self.file = self.j.dir / f"seg-{len(self.j.segments):06d}{self.out.suffix.lower()}"
        self.file.unlink(missing_ok=True)
        writer = FfmpegWriter if self.encoder == "ffmpeg" else VideoWriter
        self.writer = writer(self.file, self.info, width=self.size[0], height=self.size[1], codec=self.codec,
                                  crf=self.crf, preset=self.preset, pix_fmt=self.pix_fmt, copy_streams=False)

    def _write(self, rgb, pts) -> None:
        if pts is None:  # containers without timestamps: the frame number at the stream rate
            info = self.info
            pts = int(round(self.index / (info.fps * info.time_base))) if info.fps else self.index
        self.writer.write(rgb, pts)

    def _close(self) -> dict:
        w, self.writer = self.writer, None
        w.close()
        _fsync(self.file)  # on disk before the journal names it (a power cut must not leave it empty)
        entry: dict = {"file": self.file.name}
        if w.sequential:  # the container keeps no frame times: the join takes them from here
            entry["pts"] = w.written_pts
        return entry

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
            if self.file is not None:
                self.file.unlink(missing_ok=True)


class ImageSink(Sink):
    def __init__(self, journal: Journal, skip: int, opts: JobOptions) -> None:
        super().__init__(journal, skip, opts.segment_frames, opts.segment_seconds)
        self.dir = journal.dir / "frames"
        self.dir.mkdir(exist_ok=True)
        for f in self.dir.iterdir():  # frames written after the last journal entry are redone
            if not (f.stem.isdigit() and int(f.stem) < journal.frames_done and f.suffix == ".png"):
                f.unlink()

    def _write(self, rgb, pts) -> None:
        name = f"{self.index:08d}.png"
        tmp = self.dir / f".tmp-{name}"
        write_image(rgb, tmp)
        _fsync(tmp)
        os.replace(tmp, self.dir / name)


def _fsync(path: Path) -> None:
    """Flush a finished file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
