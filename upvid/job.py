"""One upscaling job (IN -> OUT), resumable, and the planning of batches of jobs.

A job never writes under OUT's final name until it has finished: the output is built in a
hidden work folder next to OUT, ``.<OUT name>.upvid-partial/``:

- a video OUT is encoded as numbered, cleanly closed video-only segments (``seg-000000.mp4``,
  one every ``segment_frames`` frames or ``segment_seconds`` seconds, whichever comes first);
- an image-folder OUT is written frame by frame (``frames/00000000.png``);
- ``journal.json`` records the segments that are complete and a fingerprint of the job.

At the end the segments are joined by copying their packets (no re-encoding) into a temporary
file together with the input's audio, subtitles and chapters (:func:`upvid.io.mux.assemble`),
renamed to OUT, and the work folder is removed. If the job is interrupted (Ctrl-C, SIGTERM,
SIGKILL, power loss), runs out of memory or disk space, or crashes, the complete segments stay;
running the same command with ``--resume`` re-decodes the input, skips the frames already done
(feeding the model a few frames of warm-up context before the resume point and dropping their
outputs), and continues. Segments keep the input's own timestamps, so VFR inputs stay exact.
No failure deletes finished segments: after an input, encoder or join error the work folder
stays (a failed join leaves ``segments.ffconcat`` and says how to finish); only a job that
failed before its first segment, or an error that concerns the whole batch, leaves nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from upvid.engine.pipeline import run_pipeline
from upvid.engine.shots import DETECTORS, CutFinder, ResumedCuts, cut_finder
from upvid.errors import EncodeError, InputError, OutOfMemoryError, OutputError, UpvidError, UsageError
from upvid.io.images import IMAGE_SUFFIXES, probe_images, read_image_frames, write_image
from upvid.io.probe import VideoInfo, bit_depth_of, probe
from upvid.io.reader import read_frames
from upvid.io.span import Span
from upvid.io.codecs import (
    VIDEO_SUFFIXES,
    check_encoder_options,
    check_frame_size,
    choose_pix_fmt,
    default_codec,
    yuv420_target,
)
from upvid.io.mux import AudioOptions, assemble, check_audio, remove_stale_temps, unique_temp_path
from upvid.io.writer import VideoWriter

log = logging.getLogger("upvid")

JOURNAL_VERSION = 1

#: File suffixes taken as video inputs when a folder is expanded for a batch.
INPUT_VIDEO_SUFFIXES = VIDEO_SUFFIXES | {".mpg", ".mpeg", ".ogv", ".ogg", ".flv", ".wmv", ".3gp", ".m2ts", ".vob", ".y4m"}

#: Suffixes of media that are not video (audio, still images, subtitles): refused as OUT, since
#: an OUT without a video suffix would otherwise be taken as a folder of PNG frames.
NOT_VIDEO_SUFFIXES = {".ogg", ".mp3", ".m4a", ".aac", ".ac3", ".wav", ".flac", ".opus", ".oga", ".wma", ".mka", ".mp2",
                      ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".srt", ".ass", ".vtt",
                      ".txt", ".json"}


@dataclass
class JobOptions:
    """Everything a job needs besides IN and OUT (the ``upvid upscale`` options)."""

    model: str = "basicvsrpp"
    scale: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    chunk: int | None = None
    overlap: int | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    codec: str = "auto"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "auto"
    bit_depth: int | None = None
    fps: Fraction = Fraction(25)
    weights_dir: Path | None = None
    overwrite: bool = False
    resume: bool = False
    skip_existing: bool = False
    segment_frames: int = 300
    segment_seconds: float = 60.0
    random_weights: bool = False
    compile: bool = False
    colour_on_device: bool | None = None  # YUV <-> RGB in the engine (None: on CUDA)
    outscale: float | None = None         # final size = outscale x input (model at its own scale, then resized)
    size: tuple[int, int] | None = None   # final (width, height)
    height: int | None = None             # final height, width keeping the aspect ratio
    audio_codec: str = "copy"             # copy | aac | opus | flac | none (--no-audio)
    audio_bitrate: int | None = None      # bits/s for transcoded audio
    suffix: str = ""                      # batch: appended to each output's stem (--suffix _x4)
    scene_cuts: str = "auto"              # auto (detect) | off | a file of cuts (upvid.engine.shots)
    scene_detector: str = "content"       # PySceneDetect detector: content | adaptive
    scene_threshold: float | None = None  # its threshold (default: PySceneDetect's)
    span: Span | None = None              # a preview: --start/--duration or --frames (upvid.io.span)
    denoise: float | None = None          # --denoise: weight of the model's own weights vs its twin's

    def __post_init__(self) -> None:
        """Check the output-size options (they exclude each other).

        Raises:
            UsageError: more than one of ``outscale``/``size``/``height``, or a value out of range.
        """
        if sum(o is not None for o in (self.outscale, self.size, self.height)) > 1:
            raise UsageError("give one of --outscale, --size and --height")
        if self.outscale is not None and not 0 < self.outscale <= 64:
            raise UsageError(f"--outscale must be in (0, 64], got {self.outscale}")
        if self.height is not None and self.height < 2:
            raise UsageError(f"--height must be >= 2, got {self.height}")
        if self.size is not None and min(self.size) < 2:
            raise UsageError(f"--size must be at least 2x2, got {self.size[0]}x{self.size[1]}")
        if self.scene_cuts not in ("auto", "off") and not Path(self.scene_cuts).is_file():
            raise UsageError(f"--scene-cuts must be auto, off or a file of cuts; {self.scene_cuts}: no such file")
        if self.scene_detector not in DETECTORS:
            raise UsageError(f"--scene-detector must be one of {', '.join(DETECTORS)}, got {self.scene_detector!r}")
        if self.scene_threshold is not None and not self.scene_threshold > 0:
            raise UsageError(f"--scene-threshold must be > 0, got {self.scene_threshold}")


@dataclass
class JobResult:
    """Outcome of one job (one line of the ``--json`` summary)."""

    input: str
    output: str | None
    status: str  # "ok", "skipped", "failed"
    exit_code: int = 0
    error: str | None = None
    frames: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    size: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def work_dir_for(out: Path) -> Path:
    """The hidden work folder of output ``out``."""
    return out.parent / f".{out.name}.upvid-partial"


def is_image_output(out: Path) -> bool:
    """OUT is an image folder when it has no video suffix (an existing folder named ``vid.mp4``
    is a video OUT, refused by :func:`check_output` as a directory)."""
    return out.suffix.lower() not in INPUT_VIDEO_SUFFIXES


def is_image_input(path: Path) -> bool:
    return path.is_dir()


# -- memory ------------------------------------------------------------------------------------
def available_memory() -> int | None:
    """Host memory upvid may use, in bytes: ``$UPVID_MAX_MEMORY`` if set, else the smaller of
    ``MemAvailable`` and the cgroup limit; ``None`` if unknown."""
    env = os.environ.get("UPVID_MAX_MEMORY")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise UsageError(f"UPVID_MAX_MEMORY must be a number of bytes, got {env!r}") from None
    vals = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    vals.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            v = Path(p).read_text().strip()
            if v.isdigit() and int(v) < 1 << 60:
                used = 0
                for q in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
                    try:
                        used = int(Path(q).read_text().strip())
                        break
                    except (OSError, ValueError):
                        continue
                vals.append(int(v) - used)
        except OSError:
            continue
    return min(vals) if vals else None


def estimate_memory(width: int, height: int, scale: int, clip: int, queue: int, deep: bool, on_host: bool = True) -> int:
    """Bytes of host memory the streaming pipeline holds for output frames of ``(scale*width) x
    (scale*height)``: the integer frames in the output queue, the clip being converted and the
    encoder, plus (when the model runs on the CPU) the float32 output of one clip/batch and its
    normalised copy."""
    px = width * scale * height * scale * 3
    return (px * 4 * clip * 2 if on_host else 0) + px * (2 if deep else 1) * (queue + clip + 4)


def check_memory(info: VideoInfo, scale: int, clip: int, queue: int, deep: bool, device, device_clip: int | None = None) -> None:
    """Fail early, with a clear message, when the output frames cannot fit in memory.

    On CUDA the float32 output of ``device_clip`` frames (stitched tiles and their normalised
    copy) must fit in the free device memory; the host must hold the integer frames in flight.

    Raises:
        OutOfMemoryError: the estimate exceeds the available host (or CUDA) memory.
    """
    cuda = getattr(device, "type", "cpu") == "cuda"
    checks = [(estimate_memory(info.width, info.height, scale, clip, queue, deep, on_host=not cuda),
               available_memory(), "host memory", clip)]
    if cuda:
        try:
            import torch

            free, _ = torch.cuda.mem_get_info(device)
            n = device_clip or clip
            px = info.width * scale * info.height * scale * 3
            checks.append((px * 4 * n * 2, free, f"free memory on {device}", n))
        except Exception:  # noqa: BLE001
            pass
    for need, have, where, n in checks:
        if have is not None and need > have:
            raise OutOfMemoryError(
                f"{info.width}x{info.height} x{scale} -> {info.width * scale}x{info.height * scale} output frames need "
                f"about {need / 2**30:.1f} GiB for a clip of {n} frames, but only {have / 2**30:.1f} GiB of {where} "
                "is available; use a smaller --scale or --chunk"
            )


# -- journal -----------------------------------------------------------------------------------
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
        _unlock(work)
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


def _unlock(work: Path) -> None:
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


# -- sinks ---------------------------------------------------------------------------------------
class _Sink:
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


class _VideoSink(_Sink):
    def __init__(self, journal: Journal, skip: int, opts: JobOptions, info: VideoInfo, out: Path, size: tuple[int, int],
                 codec: str, pix_fmt: str) -> None:
        super().__init__(journal, skip, opts.segment_frames, opts.segment_seconds)
        self.info, self.out, self.size = info, out, size
        self.codec, self.pix_fmt, self.crf, self.preset = codec, pix_fmt, opts.crf, opts.preset
        self.writer: VideoWriter | None = None
        self.file: Path | None = None

    def _open(self) -> None:
        self.file = self.j.dir / f"seg-{len(self.j.segments):06d}{self.out.suffix.lower()}"
        self.file.unlink(missing_ok=True)
        self.writer = VideoWriter(self.file, self.info, width=self.size[0], height=self.size[1], codec=self.codec,
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


class _ImageSink(_Sink):
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


# -- the job -------------------------------------------------------------------------------------
class EngineFactory:
    """Loads the model once and makes a fresh :class:`~upvid.engine.Engine` per job.

    Errors raised here (unknown model, weights, bad chunk/tile options) concern every job of
    a batch; :func:`run_job` wraps them in :class:`GlobalError`.
    """

    def __init__(self, opts: JobOptions) -> None:
        self.opts = opts
        self.net = None
        self.device = None
        self.dtype = None

    def load(self):
        if self.net is None:
            from upvid.engine import resolve_device, resolve_dtype
            from upvid.models import load_model

            self.device = resolve_device(self.opts.device)
            resolve_dtype(self.opts.dtype, self.device)  # a bad --dtype fails before the model loads
            import torch

            with torch.random.fork_rng(devices=[]):  # --random-weights: the same network on every run (resume)
                torch.manual_seed(0)
                self.net = load_model(self.opts.model, self.opts.scale, pretrained=not self.opts.random_weights,
                                      weights_dir=self.opts.weights_dir, device=self.device, denoise=self.opts.denoise)
            rec = self.net.record
            self.dtype = resolve_dtype(self.opts.dtype, self.device, half=rec.half, bfloat16=rec.bfloat16)
        return self.net

    def engine(self):
        from upvid.engine import Engine, EngineConfig

        o = self.opts
        cfg = EngineConfig.for_model(self.load(), chunk=o.chunk, overlap=o.overlap, tile=o.tile,
                                     tile_overlap=o.tile_overlap, device=self.device, dtype=self.dtype,
                                     compile=o.compile)
        return Engine(self.net, cfg)


class GlobalError(Exception):
    """Wraps an error that concerns the whole batch (model, weights, engine options)."""

    def __init__(self, error: UpvidError) -> None:
        super().__init__(str(error))
        self.error = error


def warmup_frames(net, cfg) -> int:
    """Frames of context to re-run before a resume point so the outputs after it see real neighbours."""
    if net.family == "recurrent":
        return cfg.chunk
    return net.record.frames // 2


def output_size(width: int, height: int, scale: int, opts: JobOptions) -> tuple[int, int]:
    """The output frame size: the model's ``scale`` x input, or what ``--outscale`` / ``--size`` /
    ``--height`` ask for (aspect kept for ``--outscale`` and ``--height``; even for 4:2:0).
    The options were checked by :class:`JobOptions`.
    """
    if opts.outscale is not None:
        w, h = width * opts.outscale, height * opts.outscale
    elif opts.size is not None:
        w, h = opts.size
    elif opts.height is not None:
        w, h = width * opts.height / height, opts.height
    else:
        return width * scale, height * scale
    w, h = max(2, int(round(w / 2)) * 2), max(2, int(round(h / 2)) * 2)
    return w, h


def _fingerprint(inp: Path, out: Path, opts: JobOptions, net, codec: str | None, pix_fmt: str | None) -> dict:
    st = inp.stat()
    scale = net.scale
    digest = net.record.extra.get("sha256")  # a --model checkpoint file stands for its content (hashed at load)
    model = f"file:{digest[:16]}" if digest else opts.model
    return {"input": str(inp.resolve()), "input_size": st.st_size if inp.is_file() else None,
            "input_mtime_ns": st.st_mtime_ns, "model": model, "random_weights": opts.random_weights, "scale": scale, "codec": codec, "crf": opts.crf,
            "preset": opts.preset, "pix_fmt": pix_fmt, "output": out.name, "fps": str(opts.fps) if inp.is_dir() else None,
            "out_size": [opts.outscale, list(opts.size) if opts.size else None, opts.height],
            "audio": [opts.audio_codec, opts.audio_bitrate],
            "scene_cuts": [_cuts_identity(opts.scene_cuts), opts.scene_detector, opts.scene_threshold],
            "span": opts.span.describe() if opts.span else None, "denoise": opts.denoise}


def _cuts_identity(mode: str) -> str:
    """``--scene-cuts`` in the fingerprint: a cut file stands for its content, not its name."""
    return mode if mode in ("auto", "off") else _file_identity(Path(mode))


def _file_identity(path: Path) -> str:
    """A file named by an option (a cut list) stands for its content."""
    import hashlib

    return "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def check_output(inp: Path, out: Path, opts: JobOptions) -> bool:
    """Validate OUT before any work. Returns ``False`` when the job is to be skipped (``--skip-existing``).

    Raises:
        OutputError: OUT exists (no ``--overwrite``), is the wrong kind, or its folder is missing/unwritable.
        UsageError: OUT is IN.
    """
    if out.exists() or out.is_symlink():
        if inp.exists() and out.resolve() == inp.resolve():
            raise UsageError(f"{out}: output would overwrite the input")
        if opts.skip_existing:
            if not (out.is_dir() and not any(out.iterdir())):
                return False
        if is_image_output(out):
            if not out.is_dir():
                raise OutputError(f"{out}: exists and is a file (an OUT without a video suffix is a folder of PNG frames)")
            if any(out.iterdir()) and not opts.overwrite:
                raise OutputError(f"{out}: folder is not empty (use --overwrite to replace its frames)")
        elif out.is_dir():
            raise OutputError(f"{out}: is a directory")
        elif not opts.overwrite:
            raise OutputError(f"{out}: exists (use --overwrite to replace it)")
    if not out.is_dir() and out.suffix.lower() in NOT_VIDEO_SUFFIXES:
        raise UsageError(f"{out}: {out.suffix} is not a video container suffix; use a video suffix (.mkv, .mp4, .mov, "
                         ".webm, .avi, .nut, .ts, .mpg, .ogv), or a name without a suffix for a folder of PNG frames")
    parent = out.parent
    if not parent.exists():
        raise OutputError(f"{parent}: no such directory")
    if not parent.is_dir():
        raise OutputError(f"{parent}: not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: permission denied (cannot write the output there)")
    return True


def run_job(inp: Path, out: Path, opts: JobOptions, engines: EngineFactory,
            on_frame: Callable[[int, int], None] | None = None) -> JobResult:
    """Upscale ``inp`` (a video file or a folder of images) to ``out`` (a video file or a folder).

    Args:
        inp, out: paths.
        opts: options.
        engines: shared model loader.
        on_frame: progress callback ``(frames_done, total_or_0)``.

    Returns:
        The :class:`JobResult` (status ``ok`` or ``skipped``).

    Raises:
        UpvidError: the job failed (its exit code says why); GlobalError: the model/options failed.
        KeyboardInterrupt: interrupted (complete segments are kept for ``--resume``).
    """
    t0 = time.perf_counter()
    inp, out = Path(inp), Path(out)
    if not check_output(inp, out, opts):
        return JobResult(str(inp), str(out), "skipped", error="output exists")
    image_in = is_image_input(inp)
    image_out = is_image_output(out)
    info = probe_images(inp, opts.fps) if image_in else probe(inp)
    if image_out and info.others:
        log.warning("%s: writing a folder of PNG frames; its %d audio/subtitle stream(s) are not kept "
                    "(give OUT a video suffix, e.g. .mkv, to keep them)", out, len(info.others))
    codec = pix_fmt = None
    audio = AudioOptions(opts.audio_codec, opts.audio_bitrate)
    if not image_out:
        if opts.bit_depth == 16:
            raise UsageError(f"{out}: --bit-depth 16 is for PNG-folder outputs; a video takes 8 or 10")
        codec = default_codec(out.suffix, info.codec) if opts.codec == "auto" else opts.codec
        check_encoder_options(codec, opts.crf, opts.preset)
        pix_fmt = choose_pix_fmt(codec, opts.pix_fmt, opts.bit_depth, info.bit_depth)
        check_audio(info, out, audio)
        deep = info.bit_depth > 8 or bit_depth_of(pix_fmt) > 8
    else:
        deep = (opts.bit_depth or info.bit_depth) > 8
    try:
        net = engines.load()
        engine = engines.engine()
    except UpvidError as e:
        raise GlobalError(e) from e
    s = net.scale
    size = output_size(info.width, info.height, s, opts)
    if size != (info.width * s, info.height * s):
        engine.cfg.out_size = size
    queue = max(4, 2 * engine.cfg.chunk)
    device_clip = 1 if engine.cfg.auto_chunk else engine.cfg.chunk  # the CUDA planner may shrink window batches
    check_memory(info, s, engine.cfg.chunk, queue, deep, engines.device, device_clip)
    check_frame_size(*size)
    work = work_dir_for(out)
    journal = open_journal(work, _fingerprint(inp, out, opts, net, codec, pix_fmt), opts.resume)
    done = journal.frames_done
    clock = _Clock(info, opts.span is not None)
    cuts = cut_finder(opts.scene_cuts, net.family, net.record.frames, fps=float(info.fps or 25),
                      detector=opts.scene_detector, threshold=opts.scene_threshold, time_of=clock.times.get,
                      frame_of=clock.numbers.get)
    at_cut = done > 0 and cuts is not None and done in journal.cuts
    start = max(0, done - warmup_frames(net, engine.cfg)) if done and not at_cut else done
    if done and cuts is not None:
        cuts = ResumedCuts(journal.cuts, done, cuts)
    sink: _Sink | None = None
    tmp: Path | None = None
    told = False
    try:
        if not journal.complete:
            if image_out:
                sink = _ImageSink(journal, done - start, opts)
            else:
                sink = _VideoSink(journal, done - start, opts, info, out, size, codec, pix_fmt)
            on_device = opts.colour_on_device if opts.colour_on_device is not None else engines.device.type == "cuda"
            if on_device and not image_out and not deep:  # 4:2:0 planes both ways, converted on the GPU
                engine.cfg.yuv_out = yuv420_target(info, size[0], size[1], pix_fmt)
            planar = on_device and not image_in and not deep
            frames = (read_image_frames(info, high_bit_depth=deep, span=opts.span) if image_in
                      else read_frames(inp, info, high_bit_depth=deep, yuv=planar, span=opts.span))
            source = (f for f in clock.renumber(frames) if f.index >= start)
            total = 0 if opts.span else info.frames
            cb = (lambda n: on_frame(start + n, total)) if on_frame is not None else None
            sink.cuts = cuts
            run_pipeline(source, engine, sink, on_frame=cb, cuts=cuts, first=start)
            if opts.span is not None and clock.window is not None:
                journal.window = list(clock.window)
            sink.finish()
        if journal.frames_done == 0:
            if opts.span is not None:
                raise UsageError(f"{inp}: no frame in {opts.span.describe()} (the video has {info.frames or 'fewer'} "
                                 f"frames, {info.duration:.2f} s)")
            raise InputError(f"{inp}: no decodable video frame")
        if image_out:
            _publish_frames(work / "frames", out, journal.frames_done)
        else:
            for stale in remove_stale_temps(out):  # a kill during an earlier join left it
                log.info("removed %s, left by an interrupted join", stale.name)
            tmp = unique_temp_path(out)
            recorded = [s_.get("pts") for s_ in journal.segments]
            try:
                assemble([work / s_["file"] for s_ in journal.segments], tmp, info,
                         recorded_pts=recorded if all(r is not None for r in recorded) else None, audio=audio,
                         window=tuple(journal.window) if opts.span is not None and journal.window else None)
            except UpvidError as e:
                told = True  # the join error already says where the segments are and how to finish
                raise _join_failed(e, inp, out, journal) from e
            os.replace(tmp, out)
            tmp = None
        _unlock(work)
        shutil.rmtree(work, ignore_errors=True)
    except BaseException as e:
        _unlock(work)
        if sink is not None:
            sink.abort()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        # Finished segments are never deleted by a failure: an input, encoder or join error late in
        # a job keeps them for --resume (which redoes only what is missing, or only the join).
        keep = journal.frames_done > 0 and not isinstance(e, GlobalError)
        if keep and not told:
            log.warning("%d frames of %s are done and kept in %s; run the same command with --resume to continue",
                        journal.frames_done, out.name, work)
        elif not keep:
            shutil.rmtree(work, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, UpvidError):
            raise OutputError(f"{out}: {'no space left on device' if e.errno == 28 else e.strerror or e}") from e
        raise
    return JobResult(str(inp), str(out), "ok", frames=journal.frames_done, resumed_from=done,
                     seconds=round(time.perf_counter() - t0, 3), size=f"{info.width}x{info.height}->{size[0]}x{size[1]}")


class _Clock:
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
        import dataclasses

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


class JoinError(EncodeError):
    """Every frame is encoded, but joining the segments into OUT failed; the segments are kept."""


def _join_failed(e: UpvidError, inp: Path, out: Path, journal: Journal) -> UpvidError:
    """Keep the finished segments, write an FFmpeg concat list beside them, and say how to finish.

    Returns:
        A :class:`JoinError` (or the original error for disk-full and other output errors) whose
        message names the work folder, the ``--resume`` retry and the manual ``ffmpeg`` join.
    """
    listing = journal.dir / "segments.ffconcat"
    try:
        listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{s['file']}'\n" for s in journal.segments))
    except OSError:
        pass
    how = (f"all {journal.frames_done} frames are done and kept in {journal.dir}; fix the cause and run the same "
           f"command with --resume (only the join is redone), or join them yourself: ffmpeg -f concat -safe 0 -i "
           f"{listing} -i {inp} -map 0:v -map 1:a? -map 1:s? -c copy {out.with_suffix('.mkv')}")
    if isinstance(e, OutputError):
        return type(e)(f"{e}; {how}")
    return JoinError(f"joining the segments into {out.name} failed ({e}); {how}")


def _publish_frames(frames: Path, out: Path, n: int) -> None:
    """Move the finished frames folder to ``out`` (renamed when possible; merged into an existing folder)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(frames, out)
        return
    for i in range(n):  # --overwrite into a non-empty folder: replace our frame names, drop stale ones
        name = f"{i:08d}.png"
        os.replace(frames / name, out / name)
    for f in out.iterdir():
        if f.suffix == ".png" and f.stem.isdigit() and len(f.stem) == 8 and int(f.stem) >= n:
            f.unlink()


# -- batches -------------------------------------------------------------------------------------
def _has_images(d: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())


def output_name(inp: Path, out_dir: Path, fmt: str | None, suffix: str = "") -> Path:
    """OUT for IN in a batch: ``out_dir/<stem><suffix>.<fmt>``; by default the input's suffix when
    upvid can write it (else ``.mkv``), and a folder for image-folder inputs."""
    stem = (inp.name if inp.is_dir() else inp.stem) + suffix
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt in ("png", "images", "frames", "dir", "folder"):
            return out_dir / stem
        return out_dir / f"{stem}.{fmt}"
    if inp.is_dir():
        return out_dir / stem
    ext = inp.suffix.lower()
    return out_dir / (stem + (ext if ext in VIDEO_SUFFIXES else ".mkv"))


def plan_batch(inputs: list[Path], out_dir: Path, fmt: str | None,
               suffix: str = "") -> list[tuple[Path, Path | None, UpvidError | None]]:
    """Expand folders and name outputs. A folder holding videos gives one job per video (sorted,
    not recursive); a folder holding only images is one image-sequence job. Inputs that would
    write the same output keep their folder structure under ``out_dir`` (relative to the folder
    they share), so ``a/x.mp4`` and ``b/x.mp4`` become ``OUT/a/x.mp4`` and ``OUT/b/x.mp4``.

    Returns:
        ``(input, output, error)`` triples; ``error`` is set for inputs that cannot be a job
        (the same input given twice, an input that is not there, an empty folder).
    """
    jobs: list[tuple[Path, Path | None, UpvidError | None]] = []
    for p in inputs:
        if p.is_dir():
            vids = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in INPUT_VIDEO_SUFFIXES
                          and not f.name.startswith("."))
            if vids:
                jobs += [(f, output_name(f, out_dir, fmt, suffix), None) for f in vids]
            elif _has_images(p):
                jobs.append((p, output_name(p, out_dir, fmt, suffix), None))
            else:
                jobs.append((p, None, InputError(f"{p}: no video or image files in this folder")))
        elif not p.exists():
            jobs.append((p, None, InputError(f"{p}: no such file")))
        else:
            jobs.append((p, output_name(p, out_dir, fmt, suffix), None))
    by_out: dict[Path, list[int]] = {}
    for k, (_, out, _) in enumerate(jobs):
        if out is not None:
            by_out.setdefault(out.resolve(), []).append(k)
    for ks in by_out.values():
        if len(ks) < 2:
            continue
        srcs = [jobs[k][0].resolve() for k in ks]
        if len(set(srcs)) < len(srcs):  # the very same input twice: the later ones are refused
            seen: set[Path] = set()
            for k, src in zip(ks, srcs):
                if src in seen:
                    jobs[k] = (jobs[k][0], None, UsageError(f"{jobs[k][0]}: given twice in the batch"))
                seen.add(src)
            ks = [k for k in ks if jobs[k][1] is not None]
            srcs = [jobs[k][0].resolve() for k in ks]
            if len(ks) < 2:
                continue
        common = Path(os.path.commonpath([s.parent for s in srcs]))
        same_folder = len({s.parent for s in srcs}) < len(srcs)  # x.mp4 and x.mkv side by side
        for k, src in zip(ks, srcs):
            inp, out, err = jobs[k]
            name = f"{out.stem}-{inp.suffix.lstrip('.').lower()}{out.suffix}" if same_folder and inp.is_file() else out.name
            jobs[k] = (inp, out_dir / src.parent.relative_to(common) / name, err)
    return jobs
