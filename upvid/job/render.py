"""A worker's task: upscale one :class:`~upvid.job.split.Chunk` into one closed segment file.

The same function runs in a local thread per device (``--devices``) and in a Ray actor per GPU
or CPU slot (``--ray``). It decodes the chunk with its context, runs the engine (scene cuts of
the whole video given, so shots split as in a single run), keeps the chunk's own outputs and
writes them as ``seg-<index>.<ext>`` in the work folder (under a temporary name, fsynced, then
renamed), with the input's own timestamps.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from upvid.engine.pipeline import run_pipeline
from upvid.engine.shots import ListedCuts
from upvid.errors import InputError, OutputError
from upvid.io.external import FfmpegWriter
from upvid.io.probe import VideoInfo, bit_depth_of
from upvid.io.reader import read_frames
from upvid.io.span import Span
from upvid.io.writer import VideoWriter
from upvid.job.encoding import colour_path
from upvid.job.options import JobOptions
from upvid.job.split import Chunk


@dataclass(frozen=True)
class Task:
    """Everything a worker needs for one chunk (plain data: it travels to Ray actors).

    Attributes:
        input: the video (a path every worker can read).
        work: the work folder (on storage every worker sees).
        info: the input's (deinterlaced) :class:`VideoInfo`.
        chunk: the frames to make.
        cuts: scene cuts of the whole video (frame numbers).
        codec, pix_fmt, size: the encoder and the output frame size ``(width, height)``.
        deinterlace: ``(mode, every_frame)``.
        suffix: the segment files' suffix (OUT's).
        input_stamp: ``(size, mtime_ns)`` of the input when the job started (``None``: unchecked);
            a worker that finds another file there refuses the chunk.
    """

    input: str
    work: str
    info: VideoInfo
    chunk: Chunk
    cuts: tuple[int, ...]
    codec: str
    pix_fmt: str
    size: tuple[int, int]
    deinterlace: tuple[str, bool]
    suffix: str
    input_stamp: tuple[int, int] | None = None


def segment_name(task: Task) -> str:
    return f"seg-{task.chunk.index:06d}{task.suffix}"


def render(task: Task, opts: JobOptions, engines) -> dict:
    """Make the chunk's segment.

    Args:
        task: the chunk and its encoding.
        opts: the job's options.
        engines: this worker's :class:`~upvid.job.run.EngineFactory` (its model, loaded once).

    Returns:
        The journal entry ``{"file", "first", "frames", "index", "pts"?}``.

    Raises:
        OutputError: this machine cannot see the work folder (or cannot write there).
        InputError: it cannot read the input, or the chunk has no frames.
        EncodeError: the encoder failed.
    """
    work, chunk = Path(task.work), task.chunk
    if not work.is_dir():
        raise OutputError(f"{socket.gethostname()}: cannot see the work folder {work}; put it (OUT's folder) on "
                          "storage every worker mounts at the same path")
    if not Path(task.input).is_file():
        raise InputError(f"{socket.gethostname()}: cannot see the input {task.input} (it must be at the same path "
                         "on every worker)")
    st = os.stat(task.input)
    if task.input_stamp is not None and (st.st_size, st.st_mtime_ns) != tuple(task.input_stamp):
        raise InputError(f"{socket.gethostname()}: {task.input} is not the file the job started with (its size or "
                         "modification time changed); the finished chunks are kept: restore it, or start again")
    net = engines.load()
    s = net.scale
    cfg = engines.config()
    info = task.info
    planar, yuv_out = colour_path(info, task.size, task.pix_fmt, opts)
    cfg = dataclasses.replace(cfg, yuv_out=yuv_out,
                              out_size=task.size if task.size != (info.width * s, info.height * s) else None)
    deep = info.bit_depth > 8 or bit_depth_of(task.pix_fmt) > 8
    frames = read_frames(task.input, info, high_bit_depth=deep, yuv=planar, deinterlace=task.deinterlace,
                         span=Span(first=chunk.decode_first, end=chunk.decode_end))
    name = segment_name(task)
    tmp = work / f".{name}.tmp{task.suffix}"
    writer_cls = FfmpegWriter if opts.encoder == "ffmpeg" else VideoWriter
    writer = writer_cls(tmp, info, width=task.size[0], height=task.size[1], codec=task.codec, crf=opts.crf,
                        preset=opts.preset, pix_fmt=task.pix_fmt, copy_streams=False)
    state = {"k": chunk.decode_first, "written": 0}

    def sink(picture, pts) -> None:
        k = state["k"]
        state["k"] += 1
        if k < chunk.first or (chunk.end is not None and k >= chunk.end):
            return  # context, not this chunk's frame
        if pts is None:
            pts = int(round(k / (info.fps * info.time_base))) if info.fps else k
        writer.write(picture, pts)
        state["written"] += 1

    try:
        cuts = ListedCuts(frames=task.cuts)
        run_pipeline(frames, engines.engine(cfg), sink, cuts=cuts, first=chunk.decode_first, origin=chunk.origin)
        writer.close()
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    if state["written"] == 0:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{task.input}: no frame in chunk {chunk.index} ({chunk.first}:{chunk.end})")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, work / name)
    entry = {"file": name, "first": chunk.first, "frames": state["written"], "index": chunk.index}
    if writer.sequential:
        entry["pts"] = writer.written_pts
    return entry

