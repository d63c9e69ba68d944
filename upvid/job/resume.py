"""The work folder's journal (completed segments, a job's fingerprint), its lock, and the resume point."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from upvid.errors import OutputError, UsageError
from upvid.job.options import JobOptions

log = logging.getLogger("upvid")


JOURNAL_VERSION = 1


@dataclass
class Journal:
    """The work folder's record of completed segments."""

    dir: Path
    fingerprint: dict
    segments: list[dict] = field(default_factory=list)
    frames_done: int = 0
    complete: bool = False
    cuts: list[int] = field(default_factory=list)  # scene cuts found so far (output frame numbers)
    window: list[float] | None = None  # a preview's [t0, t1) in input seconds (for the audio at the join)

    @property
    def path(self) -> Path:
        return self.dir / "journal.json"

    def save(self) -> None:
        tmp = self.dir / "journal.json.tmp"
        data = {"version": JOURNAL_VERSION, "fingerprint": self.fingerprint, "segments": self.segments,
                "frames_done": self.frames_done, "complete": self.complete, "cuts": self.cuts,
                "window": self.window}
        if self.complete:
            data["seal"] = _seal(data)
        try:
            with open(tmp, "w") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise OutputError(f"{self.path}: {'no space left on device' if e.errno == 28 else e.strerror or e}") from e

    @classmethod
    def load(cls, dir: Path) -> Journal | None:
        try:
            data = json.loads((dir / "journal.json").read_text())
            if data.get("version") != JOURNAL_VERSION:
                return None
            j = cls(dir, data["fingerprint"], list(data["segments"]), int(data["frames_done"]), bool(data["complete"]),
                    [int(c) for c in data.get("cuts", [])], data.get("window"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        sealed = j.complete and data.get("seal") == _seal(data)
        n, done = len(j.segments), j.frames_done
        j.segments, j.frames_done = _valid_prefix(dir, j.segments, j.frames_done, "distributed" not in j.fingerprint)
        # "complete" (every frame done: only the join is left) is trusted only as written by the job
        # that finished, over the very segments found; else the job reads on and finds the end itself
        j.complete = sealed and len(j.segments) == n and j.frames_done == done
        return j


def _seal(data: dict) -> str:
    """A digest of a finished journal's content: an edited or inconsistent journal no longer matches it."""
    import hashlib

    body = {k: data.get(k) for k in ("version", "fingerprint", "segments", "frames_done", "complete", "cuts", "window")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


_SEGMENT = re.compile(r"seg-\d{6}\.[a-z0-9]{2,5}")


def _valid_prefix(work: Path, segments: list, frames_done: int, contiguous: bool = True) -> tuple[list[dict], int]:
    """The recorded segments that can be trusted, in order: each a plain ``seg-NNNNNN.ext`` in the
    work folder (or, for a PNG job, its frames present), contiguous (each starts where the last
    ended), and holding as many video frames as recorded. The first one that is not ends the
    prefix; what follows is redone. A distributed job's chunks (``contiguous=False``) are checked
    one by one: a missing or damaged chunk is redone alone."""
    good: list[dict] = []
    pos = 0
    for s in segments:
        try:
            name, first, frames = s.get("file"), int(s["first"]), int(s["frames"])
        except (AttributeError, KeyError, TypeError, ValueError):
            break
        if (contiguous and first != pos) or frames < 1 or first < 0:
            break
        if "pts" in s and (not isinstance(s["pts"], list) or len(s["pts"]) != frames):
            break
        if name is None:  # a PNG job: its frames in frames/
            if not all((work / "frames" / f"{i:08d}.png").is_file() for i in range(first, first + frames)):
                break
        elif not isinstance(name, str) or not _SEGMENT.fullmatch(name) or _video_frames(work / name) != frames:
            log.warning("%s: %s is damaged, incomplete or not ours; redoing from frame %d", work, name, first)
            if contiguous:
                break
            continue
        good.append(s)
        pos = first + frames if contiguous else pos + frames
    if len(good) < len(segments) or frames_done != pos:
        if len(good) == len(segments):
            log.warning("%s: the journal's frame count (%s) does not match its segments (%d); trusting the segments",
                        work, frames_done, pos)
        kept = {id(s) for s in good}
        for s in segments:  # files of the distrusted entries are redone, never read
            if id(s) in kept:
                continue
            name = s.get("file") if isinstance(s, dict) else None
            if isinstance(name, str) and _SEGMENT.fullmatch(name):
                (work / name).unlink(missing_ok=True)
    return good, pos


def _video_frames(path: Path) -> int:
    """Video packets of a closed segment (one per frame: no B-frame packing), or -1 if unreadable."""
    import av

    try:
        with av.open(str(path)) as c:
            return sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    except (OSError, ValueError, IndexError, av.error.FFmpegError):
        return -1


def open_journal(work: Path, fingerprint: dict, resume: bool) -> Journal:
    """Start a new journal in ``work``, or (``resume``) continue the one there.

    Raises:
        UsageError: ``--resume`` but the work folder belongs to a job with other settings.
        OutputError: the folder cannot be created.
    """
    if work.exists():
        _check_unlocked(work)
        old = Journal.load(work) if resume else None
        if old is not None:
            changed = sorted(k for k in set(fingerprint) | set(old.fingerprint) if fingerprint.get(k) != old.fingerprint.get(k))
            if changed:
                raise UsageError(f"--resume: {work} was made with other settings ({', '.join(changed)} differ); "
                                 "run without --resume to start over")
            if old.frames_done:
                log.info("resuming after %d frames", old.frames_done)
            _lock(work)
            return old
        if not resume and Journal.load(work) is not None:
            log.warning("%s: discarding the unfinished work of an earlier run (use --resume to continue it)", work)
        shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=False)
    except OSError as e:
        raise OutputError(f"{work.parent}: cannot create a work folder ({e.strerror or e})") from e
    _lock(work)
    j = Journal(work, fingerprint)
    try:
        j.save()
    except OutputError:  # a full disk at the start: leave no empty work folder behind
        unlock(work)
        shutil.rmtree(work, ignore_errors=True)
        raise
    return j


_LOCKS: dict[Path, int] = {}


def _lock(work: Path) -> None:
    """Hold an exclusive lock on ``work`` for the life of this job (released when the process ends).

    Raises:
        OutputError: another upvid process holds it (is writing the same OUT).
    """
    import fcntl

    try:
        fd = os.open(work / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"{work}: cannot create a lock file ({e.strerror or e})") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(f"{work.name[1:].removesuffix('.upvid-partial')}: another upvid process is writing it") from None
    _LOCKS[work] = fd


def unlock(work: Path) -> None:
    fd = _LOCKS.pop(work, None)
    if fd is not None:
        os.close(fd)


def _check_unlocked(work: Path) -> None:
    import fcntl

    try:
        fd = os.open(work / ".lock", os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        raise OutputError(f"{work.name[1:].removesuffix('.upvid-partial')}: another upvid process is writing it") from None
    finally:
        os.close(fd)


def resume_point(done: int, net, cfg, cuts: list[int], at_cut: bool = False, total: int = 0) -> tuple[int, int]:
    """Where a resumed job starts decoding so the frames from ``done`` on equal an uninterrupted run.

    Sliding window: ``done`` minus the window's radius (its past neighbours). Recurrent: the clip
    of the shot's schedule that :func:`~upvid.engine.temporal.resume_start` gives (same clips,
    same cross-fades, same IconVSR keyframes), counted from the last scene cut before ``done``.
    A resume point at a cut needs no context.

    Args:
        total: frames in the video (the header's count; 0 unknown), to tell the short last clip.

    Returns:
        ``(start, origin)``: the first frame to decode, and its position in its shot's clip schedule.
    """
    if not done or at_cut:
        return done, 0
    if net.family != "recurrent":
        return max(0, done - net.record.frames // 2), 0
    from upvid.engine.temporal import resume_start

    shot = max([c for c in cuts if c <= done], default=0)
    rel = resume_start(done - shot, cfg.chunk, cfg.overlap, max(1, net.record.clip_grid),
                       total - shot if total else None)
    return shot + rel, rel


def fingerprint(inp: Path, out: Path, opts: JobOptions, net, codec: str | None, pix_fmt: str | None,
                cfg=None) -> dict:
    """Everything that can change a pixel of OUT (a ``--resume`` with any of it different is refused).

    Args:
        cfg: the job's :class:`~upvid.engine.EngineConfig` (its clip, overlap, tile, precision,
            device type; ``None``: the options' values).
    """
    st = inp.stat()
    scale = net.scale
    digest = net.record.extra.get("sha256")  # a --model checkpoint file stands for its content (hashed at load)
    model = f"file:{digest[:16]}" if digest else opts.model
    return {"input": str(inp.resolve()), "input_size": st.st_size if inp.is_file() else None,
            "input_mtime_ns": st.st_mtime_ns, "model": model, "random_weights": opts.random_weights, "scale": scale,
            "codec": codec, "crf": opts.crf,
            "preset": opts.preset, "pix_fmt": pix_fmt, "output": out.name, "fps": str(opts.fps) if inp.is_dir() else None,
            "out_size": [opts.outscale, list(opts.size) if opts.size else None, opts.height],
            "audio": [opts.audio_codec, opts.audio_bitrate],
            "scene_cuts": [_cuts_identity(opts.scene_cuts), opts.scene_detector, opts.scene_threshold],
            "span": opts.span.describe() if opts.span else None, "denoise": opts.denoise,
            "deinterlace": opts.deinterlace, "encoder": opts.encoder,
            "engine": _engine_identity(opts, cfg), "input_sample": _input_sample(inp)}


def _engine_identity(opts: JobOptions, cfg) -> list:
    """The engine settings that change pixels: clip/overlap, tile/overlap, precision, device type."""
    if cfg is None:
        return [opts.chunk, opts.overlap, opts.tile, opts.tile_overlap, opts.dtype, opts.device]
    return [cfg.chunk, cfg.overlap, cfg.tile, cfg.tile_overlap, cfg.auto_tile, cfg.auto_chunk,
            str(cfg.dtype).removeprefix("torch."), cfg.device.type, opts.colour_in_engine, opts.compile,
            *([cfg.backend, cfg.precision] if cfg.backend != "torch" else [])]


def _input_sample(inp: Path, block: int = 1 << 20) -> str | None:
    """A hash of the input's first and last MiB: a file replaced by another of the same size and
    modification time is still told apart (a folder of images: ``None``, its files' names count)."""
    import hashlib

    if not inp.is_file():
        return None
    h = hashlib.sha256()
    size = inp.stat().st_size
    with open(inp, "rb") as f:
        h.update(f.read(block))
        if size > block:
            f.seek(max(block, size - block))
            h.update(f.read(block))
    return h.hexdigest()[:16]


def _cuts_identity(mode: str) -> str:
    """``--scene-cuts`` in the fingerprint: a cut file stands for its content, not its name."""
    return mode if mode in ("auto", "off") else _file_identity(Path(mode))


def _file_identity(path: Path) -> str:
    """A file named by an option (a cut list) stands for its content."""
    import hashlib

    return "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
