"""A job through pipes: IN ``-`` is a stream on stdin, OUT ``-`` a stream on stdout.

``ffmpeg -i in.mkv -f nut - | upvid - - --model rlfn-x4 --format nut | ffmpeg -i - out.mkv`` and
``vspipe -c y4m script.vpy - | upvid - out.mkv``: the input is read once, in one pass (its audio
packets demuxed with the video and copied into the output as the upscaled frames reach them),
and the output is written as it is made. Memory stays bounded by the engine's queues. There are
no segments, so no ``--resume``; a file OUT is still written under a temporary name and renamed
at the end. Every message goes to stderr; stdout carries only the stream.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import av

from upvid.engine.pipeline import run_pipeline
from upvid.engine.shots import cut_finder
from upvid.errors import EncodeError, InputError, OutputError, PipeClosedError, UpvidError, UsageError
from upvid.io.codecs import check_frame_size
from upvid.io.deinterlace import deinterlaced_info, resolve_mode
from upvid.io.hdr import warn_hdr
from upvid.io.mux import unique_temp_path
from upvid.io.probe import VideoInfo, bit_depth_of, describe, open_input, probe
from upvid.io.reader import decode_frames, deinterlacer
from upvid.io.writer import VideoWriter
from upvid.job.clock import FrameClock
from upvid.job.encoding import choose_encoding, colour_path
from upvid.job.options import JobOptions, JobResult
from upvid.job.outputs import check_output, is_image_output, output_size, publish_file
from upvid.job.run import EngineFactory

log = logging.getLogger("upvid")

#: ``--format`` (OUT ``-``) and ``--input-format`` (IN ``-``) names -> FFmpeg muxer/demuxer names.
PIPE_FORMATS = {"y4m": "yuv4mpegpipe", "nut": "nut", "matroska": "matroska", "mkv": "matroska", "mpegts": "mpegts",
                "ts": "mpegts"}

#: The video codec of a stream on stdout when ``--codec auto``: raw pictures for y4m and NUT (the
#: next program encodes them), H.264 where the container cannot carry raw video.
PIPE_CODECS = {"yuv4mpegpipe": "rawvideo", "nut": "rawvideo", "matroska": "libx264", "mpegts": "libx264"}


def is_pipe(path: str | os.PathLike) -> bool:
    """IN or OUT is ``-`` (stdin / stdout)."""
    return str(path) == "-"


def pipe_format(name: str | None, what: str) -> str | None:
    """The FFmpeg format of ``--format`` / ``--input-format`` (``None`` stays ``None``).

    Raises:
        UsageError: a name that is not one of :data:`PIPE_FORMATS`.
    """
    if name is None:
        return None
    key = name.lower().lstrip(".")
    if key not in PIPE_FORMATS:
        raise UsageError(f"{what} must be one of {', '.join(sorted(set(PIPE_FORMATS)))}, got {name!r}")
    return PIPE_FORMATS[key]


class LiveStreams:
    """The input's audio (and subtitle) packets, copied into the output as the video reaches them.

    The decode thread hands packets to :meth:`push`; the encoder (through :class:`VideoWriter`'s
    ``extras`` hook) calls :meth:`pump` with each frame's time, which muxes the packets up to it.
    """

    def __init__(self, out: av.container.OutputContainer, inp: av.container.InputContainer, info: VideoInfo,
                 keep_audio: bool) -> None:
        self.out = out
        self.map: dict[int, av.stream.Stream] = {}
        self.pending: deque[av.Packet] = deque()
        dropped = []
        for o in info.others:
            if o.type == "audio" and not keep_audio:
                dropped.append(f"{o.type} {o.codec}")
                continue
            try:
                self.map[o.index] = out.add_stream_from_template(inp.streams[o.index])
            except (ValueError, av.error.FFmpegError):
                dropped.append(f"{o.type} {o.codec}")
        if dropped:
            log.warning("the %s stream cannot carry %s; left out", out.format.name, ", ".join(dropped))

    def push(self, packet: av.Packet) -> None:
        """Queue a packet of a kept stream (called by the decode thread)."""
        if packet.stream.index in self.map and packet.dts is not None:
            self.pending.append(packet)

    def pump(self, t: float) -> None:
        """Mux the queued packets that start at or before ``t`` seconds."""
        while self.pending:
            p = self.pending[0]
            if p.pts is not None and p.time_base is not None and float(p.pts * p.time_base) > t:
                return
            self._mux(self.pending.popleft())

    def finish(self) -> None:
        """Mux what is left (the tail of the audio)."""
        while self.pending:
            self._mux(self.pending.popleft())

    def close(self) -> None:
        self.pending.clear()

    def _mux(self, p: av.Packet) -> None:
        p.stream = self.map[p.stream.index]
        self.out.mux(p)


def _is_broken_pipe(e: BaseException) -> bool:
    while e is not None:
        if isinstance(e, BrokenPipeError) or getattr(e, "errno", None) == errno.EPIPE:
            return True
        e = e.__cause__ or e.__context__
    return False


def run_stream(inp: str | os.PathLike, out: str | os.PathLike, opts: JobOptions, engines: EngineFactory, *,
               input_format: str | None = None, output_format: str | None = None,
               on_frame: Callable[[int, int], None] | None = None,
               stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> JobResult:
    """Upscale a stream: IN and/or OUT is ``-`` (the other may be a file).

    Args:
        inp: ``-`` (stdin) or a video file.
        out: ``-`` (stdout) or a video file.
        opts: the job's options (``resume`` and a preview span are refused).
        engines: the model loader.
        input_format: IN ``-``: ``y4m``, ``nut``, ``matroska`` or ``mpegts`` (default: detected).
        output_format: OUT ``-``: the container on stdout (default ``nut``).
        on_frame: progress callback ``(frames_done, 0)``.
        stdin, stdout: binary streams to use instead of the process's (tests).

    Returns:
        The :class:`JobResult`.

    Raises:
        UsageError: ``--resume``/``--start``/``--frames`` with a pipe, an unknown format, a folder OUT.
        InputError: the stream cannot be read. OutputError: OUT exists or cannot be written.
        PipeClosedError: the reader of stdout went away. GlobalError: the model or engine options.
        EncodeError: the encoder or muxer failed.
    """
    t0 = time.perf_counter()
    from_stdin, to_stdout = is_pipe(inp), is_pipe(out)
    if opts.resume:
        raise UsageError("--resume needs IN and OUT to be files: a pipe cannot be read again")
    if opts.encoder != "pyav":
        raise UsageError("--encoder ffmpeg writes files in segments; a stream (- as IN or OUT) is encoded in process")
    if opts.span is not None:
        raise UsageError("--start/--duration/--frames need IN and OUT to be files")
    in_fmt = pipe_format(input_format, "--input-format")
    out_fmt = pipe_format(output_format or "nut", "--format") if to_stdout else None
    label = "-" if from_stdin else str(inp)
    if not to_stdout:
        out = Path(out)
        if is_image_output(out):
            raise UsageError(f"{out}: a stream goes to a video file (give it a video suffix) or to - (stdout)")
        check_output(Path(inp) if not from_stdin else Path("-"), out, opts)
    if from_stdin:
        try:
            c = av.open(stdin or sys.stdin.buffer, "r", format=in_fmt, metadata_errors="replace")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise InputError(f"-: cannot read the stream on stdin ({e}); name its format with --input-format "
                             "(y4m, nut, matroska, mpegts)") from e
    else:
        c = None
    try:
        if c is not None:
            info = describe(c, "-", read_first_frame=False)
        else:
            info = probe(inp)
            c = open_input(inp)
        mode = resolve_mode(opts.deinterlace, info, None if from_stdin else inp)
        info = deinterlaced_info(info, mode[0])
        return _run(c, info, mode, label, out, opts, engines, out_fmt, on_frame, stdout, t0)
    finally:
        c.close()


def _run(c, info: VideoInfo, mode, label: str, out, opts: JobOptions, engines: EngineFactory, out_fmt: str | None,
         on_frame, stdout, t0: float) -> JobResult:
    to_stdout = out_fmt is not None
    net, cfg = engines.prepare()
    s = net.scale
    size = output_size(info.width, info.height, s, opts)
    enc = choose_encoding(info, out, opts, auto_codec=PIPE_CODECS[out_fmt] if to_stdout else None, what="a stream")
    codec, pix_fmt, deep = enc.codec, enc.pix_fmt, enc.deep
    planar, yuv_out = colour_path(info, size, pix_fmt, opts)
    cfg = dataclasses.replace(cfg, yuv_out=yuv_out, out_size=None if size == (info.width * s, info.height * s) else size)
    warn_hdr(info, codec, bit_depth_of(pix_fmt) if pix_fmt else 8, log)
    check_frame_size(*size)
    tmp = None if to_stdout else unique_temp_path(Path(out))
    name = Path("-") if to_stdout else tmp
    writer = None
    try:
        writer = VideoWriter(name, info, width=size[0], height=size[1], codec=codec, crf=opts.crf, preset=opts.preset,
                             pix_fmt=pix_fmt, container_format=out_fmt, copy_streams=False,
                             target=(stdout or sys.stdout.buffer) if to_stdout else None)
        live = LiveStreams(writer.out, c, info, keep_audio=opts.audio_codec != "none")
        writer.extras = live
        clock = FrameClock(info, False)
        cuts = cut_finder(opts.scene_cuts, net.family, net.record.frames, fps=float(info.fps or 25),
                          detector=opts.scene_detector, threshold=opts.scene_threshold, time_of=clock.times.get,
                          frame_of=clock.numbers.get)
        frames = decode_frames(c, info, label, high_bit_depth=deep, yuv=planar, others=live.push,
                               filters=deinterlacer(c, info, *mode))
        cb = (lambda n: on_frame(n, 0)) if on_frame is not None else None
        stats = run_pipeline(clock.renumber(frames), engines.engine(cfg), writer.write, on_frame=cb, cuts=cuts)
        writer.close()
        writer = None
        if tmp is not None:
            publish_file(tmp, Path(out), opts.overwrite, Path(out).parent)
            tmp = None
        elif stdout is None:
            sys.stdout.buffer.flush()
    except BaseException as e:
        if writer is not None:
            writer.abort()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if to_stdout and _is_broken_pipe(e):
            raise PipeClosedError("the program reading upvid's output (stdout) closed it; the stream is incomplete") from e
        if isinstance(e, OutputError) and not isinstance(e, PipeClosedError) or isinstance(e, EncodeError):
            raise
        if isinstance(e, OSError) and not isinstance(e, UpvidError):
            raise OutputError(f"{out}: {e.strerror or e}") from e
        raise
    return JobResult(label, str(out), "ok", frames=stats.frames, seconds=round(time.perf_counter() - t0, 3),
                     size=f"{info.width}x{info.height}->{size[0]}x{size[1]}", backend=engines.summary(cfg))
