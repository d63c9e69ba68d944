"""One job, IN -> OUT: probe, plan, stream through the engine into sinks, join, publish."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from upvid.engine.pipeline import run_pipeline
from upvid.engine.upscale import queue_size
from upvid.engine.shots import ResumedCuts, cut_finder
from upvid.errors import EncodeError, InputError, OutputError, UpvidError, UsageError
from upvid.io.codecs import check_frame_size
from upvid.io.deinterlace import deinterlaced_info, resolve_mode
from upvid.io.hdr import warn_hdr
from upvid.io.held import HeldInput
from upvid.io.images import probe_images, read_image_frames
from upvid.io.mux import AudioOptions, assemble, check_audio, remove_stale_temps, unique_temp_path
from upvid.io.probe import bit_depth_of, probe
from upvid.io.reader import read_frames
from upvid.job.clock import FrameClock
from upvid.job.encoding import choose_encoding, colour_path
from upvid.job.memory import check_memory
from upvid.job.options import JobOptions, JobResult
from upvid.job.outputs import (
    appeared,
    check_output,
    is_image_input,
    is_image_output,
    output_size,
    publish_file,
    publish_frames,
    work_dir_for,
)
from upvid.job.resume import Journal, fingerprint, open_journal, resume_point, unlock
from upvid.job.sinks import ImageSink, Sink, VideoSink

log = logging.getLogger("upvid")


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
        self.backend_reason = ""  # why config() chose its backend (the job's summary)

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

    def config(self):
        """The job's :class:`~upvid.engine.EngineConfig` (the model's record, overridden by the options).

        Raises:
            UsageError: inconsistent chunk/overlap/tile options.
        """
        import dataclasses

        from upvid.engine import EngineConfig

        o = self.opts
        cfg = EngineConfig.for_model(self.load(), chunk=o.chunk, overlap=o.overlap, tile=o.tile,
                                     tile_overlap=o.tile_overlap, device=self.device, dtype=self.dtype,
                                     compile=o.compile)
        backend, precision, self.backend_reason = self.backend()
        return dataclasses.replace(cfg, backend=backend, precision=precision)

    def backend(self) -> tuple[str, str, str]:
        """``(backend, precision, reason)`` for ``--backend`` on this device and model
        (:func:`upvid.engine.openvino.choose_backend`)."""
        from upvid.engine.openvino import choose_backend

        o = self.opts
        return choose_backend(o.backend, self.load(), self.device, self.dtype, dtype_explicit=o.dtype != "auto",
                              compile=o.compile)

    def summary(self, cfg) -> str:
        """How the model runs, for the job's line and JSON: ``"cpu, float32, torch [why]"`` or
        ``"cpu, openvino bf16 [why]"``."""
        why = self.backend_reason
        if cfg.backend == "openvino":
            return f"{self.device}, openvino {cfg.precision} [{why}]"
        dtype = str(cfg.dtype).removeprefix("torch.")
        return f"{self.device}, {dtype}, torch" + (f" [{why}]" if why and why != "--backend torch" else "")

    def prepare(self):
        """``(network, config)`` for a job, loaded once.

        Raises:
            GlobalError: the model, its weights or the engine options failed (they concern every job).
        """
        try:
            return self.load(), self.config()
        except UpvidError as e:
            raise GlobalError(e) from e

    def engine(self, cfg):
        """A fresh :class:`~upvid.engine.Engine` for one job with settings ``cfg``."""
        from upvid.engine import Engine

        return Engine(self.load(), cfg)


class GlobalError(Exception):
    """Wraps an error that concerns the whole batch (model, weights, engine options)."""

    def __init__(self, error: UpvidError) -> None:
        super().__init__(str(error))
        self.error = error


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
    deint = ("off", False) if image_in else resolve_mode(opts.deinterlace, info, inp)
    if deint[0] != "off":
        log.info("%s: deinterlacing with %s", inp, deint[0])
        info = deinterlaced_info(info, deint[0])
    if image_out and opts.encoder != "pyav":
        raise UsageError(f"{out}: --encoder ffmpeg is for a video OUT (a folder of PNG frames is written in process)")
    if image_out and info.others:
        log.warning("%s: writing a folder of PNG frames; its %d audio/subtitle stream(s) are not kept "
                    "(give OUT a video suffix, e.g. .mkv, to keep them)", out, len(info.others))
    codec = pix_fmt = None
    audio = AudioOptions(opts.audio_codec, opts.audio_bitrate)
    if not image_out:
        enc = choose_encoding(info, out, opts)
        codec, pix_fmt, deep = enc.codec, enc.pix_fmt, enc.deep
        check_audio(info, out, audio)
    else:
        deep = (opts.bit_depth or info.bit_depth) > 8
    warn_hdr(info, codec, bit_depth_of(pix_fmt) if pix_fmt else 8, log)
    net, cfg = engines.prepare()
    s = net.scale
    size = output_size(info.width, info.height, s, opts)
    planar, yuv_out = colour_path(info, size, pix_fmt, opts, image_in=image_in)
    cfg = dataclasses.replace(cfg, yuv_out=yuv_out, out_size=None if size == (info.width * s, info.height * s) else size)
    device_clip = 1 if cfg.auto_chunk else cfg.chunk  # the CUDA planner may shrink window batches
    check_memory(info, s, cfg.chunk, queue_size(cfg), deep, engines.device, device_clip)
    check_frame_size(*size)
    work = work_dir_for(out)
    journal = open_journal(work, fingerprint(inp, out, opts, net, codec, pix_fmt, cfg), opts.resume)
    done = journal.frames_done
    clock = FrameClock(info, opts.span is not None)
    cuts = cut_finder(opts.scene_cuts, net.family, net.record.frames, fps=float(info.fps or 25),
                      detector=opts.scene_detector, threshold=opts.scene_threshold, time_of=clock.times.get,
                      frame_of=clock.numbers.get)
    at_cut = done > 0 and cuts is not None and done in journal.cuts
    start, origin = resume_point(done, net, cfg, journal.cuts if cuts is not None else [], at_cut,
                                 0 if opts.span else info.frames)
    if done and cuts is not None:
        cuts = ResumedCuts(journal.cuts, done, cuts)
    sink: Sink | None = None
    tmp: Path | None = None
    told = False
    held = None if image_in else HeldInput(inp)  # the join reads the audio from this file, not the path
    try:
        if not journal.complete:
            if image_out:
                sink = ImageSink(journal, done - start, opts)
            else:
                sink = VideoSink(journal, done - start, opts, info, out, size, codec, pix_fmt)
            frames = (read_image_frames(info, high_bit_depth=deep, span=opts.span) if image_in
                      else read_frames(inp, info, high_bit_depth=deep, yuv=planar, span=opts.span, deinterlace=deint))
            source = (f for f in clock.renumber(frames) if f.index >= start)
            total = 0 if opts.span else info.frames
            cb = (lambda n: on_frame(start + n, total)) if on_frame is not None else None
            sink.cuts = cuts
            run_pipeline(source, engines.engine(cfg), sink, on_frame=cb, cuts=cuts, first=start, origin=origin)
            if opts.span is not None and clock.window is not None:
                journal.window = list(clock.window)
            sink.finish()
        if journal.frames_done == 0:
            if opts.span is not None:
                raise UsageError(f"{inp}: no frame in {opts.span.describe()} (the video has {info.frames or 'fewer'} "
                                 f"frames, {info.duration:.2f} s)")
            raise InputError(f"{inp}: no decodable video frame")
        if image_out:
            if not opts.overwrite and out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise appeared(out, work)  # someone's frames: never replaced or deleted without --overwrite
            publish_frames(work / "frames", out, journal.frames_done)
        else:
            for stale in remove_stale_temps(out):  # a kill during an earlier join left it
                log.info("removed %s, left by an interrupted join", stale.name)
            tmp = unique_temp_path(out)
            recorded = [s_.get("pts") for s_ in journal.segments]
            try:
                assemble([work / s_["file"] for s_ in journal.segments], tmp, info,
                         recorded_pts=recorded if all(r is not None for r in recorded) else None, audio=audio,
                         window=tuple(journal.window) if opts.span is not None and journal.window else None,
                         held=held)
            except UpvidError as e:
                told = True  # the join error already says where the segments are and how to finish
                raise _join_failed(e, inp, out, journal) from e
            publish_file(tmp, out, opts.overwrite, work)
            tmp = None
        unlock(work)
        shutil.rmtree(work, ignore_errors=True)
    except BaseException as e:
        unlock(work)
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
    finally:
        if held is not None:
            held.close()
    return JobResult(str(inp), str(out), "ok", frames=journal.frames_done, resumed_from=done,
                     seconds=round(time.perf_counter() - t0, 3), size=f"{info.width}x{info.height}->{size[0]}x{size[1]}",
                     backend=engines.summary(cfg))


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
