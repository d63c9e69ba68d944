"""The work folder's journal (completed segments, a job's fingerprint), its lock, and the resume point."""

from __future__ import annotations

import json
import logging
import os
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
        for s in j.segments:  # every recorded segment must still be there
            if "file" in s and not (dir / s["file"]).is_file():
                return None
        return j


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


def warmup_frames(net, cfg) -> int:
    """Frames of context to re-run before a resume point so the outputs after it see real neighbours."""
    if net.family == "recurrent":
        return cfg.chunk
    return net.record.frames // 2


def fingerprint(inp: Path, out: Path, opts: JobOptions, net, codec: str | None, pix_fmt: str | None) -> dict:
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
            "deinterlace": opts.deinterlace, "encoder": opts.encoder}


def _cuts_identity(mode: str) -> str:
    """``--scene-cuts`` in the fingerprint: a cut file stands for its content, not its name."""
    return mode if mode in ("auto", "off") else _file_identity(Path(mode))


def _file_identity(path: Path) -> str:
    """A file named by an option (a cut list) stands for its content."""
    import hashlib

    return "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
