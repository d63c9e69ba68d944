"""`upvid upscale IN OUT` (also `upvid IN OUT`), and batches: `upvid IN... --output-dir DIR`.

Single job: any error is one line on stderr and its exit code (see :mod:`upvid.errors`).
Batch: one result line per input on stderr, a ``--json`` summary on stdout, and the exit code
of the first input that failed (0 if none did; skipped inputs count as success). Errors that
concern every input (unknown model, weights, bad options) stop the batch at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

import typer

from upvid.cli.app import DEFAULT_MODEL, EXAMPLES, app, err
from upvid.errors import OutputError, UpvidError, UsageError

#: ``--format``: the containers upvid writes (tested), or ``png`` for folders of frames.
BATCH_FORMATS = ("mkv", "mp4", "m4v", "mov", "webm", "avi", "nut", "ts", "mpg", "ogv", "png")

log = logging.getLogger("upvid")


def _progress(quiet: bool):
    """A Rich progress bar on stderr, or ``None`` when quiet or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]upscaling"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]:.2f} fps"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True,
    )


def _parse_fps(text: str) -> Fraction:
    try:
        f = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps must be a number or a fraction like 30000/1001, got {text!r}") from None
    if f <= 0:
        raise UsageError(f"--fps must be > 0, got {text}")
    return f


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    return w, h  # JobOptions checks the range


def _parse_bitrate(text: str) -> int:
    t = text.strip().lower()
    mult = {"k": 1000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        value = int(float(t.rstrip("km")) * mult)
    except ValueError:
        raise UsageError(f"--audio-bitrate must be a number of bits/s like 192k, got {text!r}") from None
    if value < 8000:
        raise UsageError(f"--audio-bitrate must be at least 8k, got {text}")
    return value


def _line(msg: str) -> None:
    sys.stderr.write("upvid: " + " ".join(msg.split()) + "\n")
    sys.stderr.flush()


@app.command("upscale", epilog=EXAMPLES)
def upscale(
    paths: Annotated[list[Path], typer.Argument(
        help="IN OUT (a video file or a folder of images each; - is stdin / stdout), or with --output-dir any "
        "number of inputs (video files, folders of videos, folders of images).", show_default=False,
        metavar="IN... [OUT]")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (see `upvid models`).")] = DEFAULT_MODEL,
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", help="Upscaling factor (default: the model's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16.")] = "auto",
    chunk: Annotated[Optional[int], typer.Option(
        "--clip", "--chunk", help="Recurrent: clip length in frames; sliding window: windows per model call "
                                  "(--chunk is the older name).")] = None,
    overlap: Annotated[Optional[int], typer.Option(
        help="Recurrent: frames shared by consecutive clips (default: the model's, scaled to --chunk when only "
             "--chunk is given).")] = None,
    tile: Annotated[Optional[int], typer.Option(help="Spatial tile in LR pixels (0: whole frame).")] = None,
    tile_overlap: Annotated[Optional[int], typer.Option(help="Tile overlap in LR pixels.")] = None,
    codec: Annotated[str, typer.Option(help="Video encoder: auto (libvpx-vp9 for .webm, else libx264), libx264, "
                                            "libx265, libsvtav1, libvpx-vp9...")] = "auto",
    crf: Annotated[int, typer.Option(help="Encoder constant rate factor (quality, lower is better).")] = 18,
    preset: Annotated[str, typer.Option(help="Encoder speed preset.")] = "medium",
    pix_fmt: Annotated[str, typer.Option("--pix-fmt", help="Output pixel format: auto (yuv420p; yuv420p10le for "
                                         "10-bit sources), yuv420p, yuv444p, yuv420p10le...")] = "auto",
    bit_depth: Annotated[Optional[int], typer.Option("--bit-depth", help="8 or 10: shorthand for --pix-fmt yuv420p / "
                                                     "yuv420p10le (PNG output: 8 or 16 bits).")] = None,
    fps: Annotated[str, typer.Option(help="Frame rate given to image-folder inputs (e.g. 25, 30000/1001).")] = "25",
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Batch: write each input's "
                                                       "output into this folder (created if missing).")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="OUT -: the stream's container (y4m, nut, "
                                                  "matroska, mpegts; default nut). Batch: output container (mp4, mkv, "
                                                  "mov, webm, avi) or png (folders of frames); default: the input's "
                                                  "own.")] = None,
    devices: Annotated[Optional[str], typer.Option("--devices", help="Split the job over these local devices "
                                                   "(cuda:0,cuda:1, or all), a thread and a model copy each.")] = None,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run on a Ray cluster: --ray (a local ray.init) or "
                                               "--ray HOST:PORT (an existing cluster); one worker per GPU, else "
                                               "per --threads CPUs. Needs pip install \"upvid[ray]\".",
                                               show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="--ray without GPUs: CPU workers to start "
                                                   "(default: the cluster's CPUs / --threads).")] = None,
    threads: Annotated[int, typer.Option("--threads", help="--ray without GPUs: torch threads per CPU worker.")] = 1,
    chunk_frames: Annotated[int, typer.Option("--chunk-frames", help="--devices/--ray: frames per task "
                                              "(boundaries move to scene cuts nearby).")] = 600,
    encoder: Annotated[str, typer.Option("--encoder", help="pyav (in process) or ffmpeg: an external ffmpeg "
                                         "binary encodes (hardware encoders: --codec h264_nvenc, hevc_vaapi, ...; "
                                         "$UPVID_FFMPEG picks the binary).")] = "pyav",
    input_format: Annotated[Optional[str], typer.Option("--input-format", help="IN -: the stream's container (y4m, "
                                                        "nut, matroska, mpegts); default: detected.")] = None,
    deinterlace: Annotated[str, typer.Option("--deinterlace", help="auto: bwdif when the stream is flagged "
                                             "interlaced (or idet finds it so); off; bwdif (a frame per frame); "
                                             "bwdif-field (a frame per field, double rate).")] = "auto",
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted job from its last complete "
                                         "segment instead of starting over.")] = False,
    segment_frames: Annotated[int, typer.Option("--segment-frames", help="Frames per resumable segment.")] = 300,
    segment_seconds: Annotated[float, typer.Option("--segment-seconds", help="Close a segment after this many "
                                                   "seconds even if it has fewer frames.")] = 60.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary of the results on stdout.")] = False,
    weights_dir: Annotated[Optional[Path], typer.Option(
        envvar="UPVID_WEIGHTS_DIR", help="Local folder searched for checkpoints before the Hub.")] = None,
    random_weights: Annotated[bool, typer.Option(
        "--random-weights", help="Randomly initialised network instead of the checkpoint (testing the pipeline "
                                 "offline; the output is noise).")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the network (pays off on long videos "
                                          "on CUDA; slow start).")] = False,
    backend: Annotated[str, typer.Option(
        "--backend", envvar="UPVID_BACKEND", help="auto (OpenVINO on the CPU for per-frame and sliding-window models "
        "when installed, else torch), torch, openvino (also recurrent models) ($UPVID_BACKEND).")] = "auto",
    outscale: Annotated[Optional[float], typer.Option("--outscale", help="Final size as a factor of the input "
                                                     "(the model runs at its own scale, then a bicubic resize).")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Final size WxH (even numbers are kept even).")] = None,
    height: Annotated[Optional[int], typer.Option("--height", help="Final height; the width keeps the aspect ratio.")] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Drop the audio tracks (subtitles and chapters stay).")] = False,
    audio_codec: Annotated[str, typer.Option("--audio-codec", help="copy (where the container takes it, else "
                                             "transcode), aac, opus or flac.")] = "copy",
    audio_bitrate: Annotated[Optional[str], typer.Option("--audio-bitrate", help="Bit rate of transcoded audio, "
                                                         "e.g. 192k.")] = None,
    suffix: Annotated[str, typer.Option("--suffix", help="Batch: appended to each output name, e.g. _x4.")] = "",
    start: Annotated[Optional[str], typer.Option("--start", help="Preview: begin at this time (seconds or "
                                                 "[HH:]MM:SS[.mmm]); audio, subtitles and timestamps follow.")] = None,
    duration: Annotated[Optional[str], typer.Option("--duration", help="Preview: this long (seconds or "
                                                    "[HH:]MM:SS[.mmm]).")] = None,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Preview: frames A:B (numbers from 0, B "
                                                  "excluded; A: or :B for an open end).")] = None,
    denoise: Annotated[Optional[float], typer.Option("--denoise", help="realesr-general-x4v3: denoise strength "
                                                     "0..1 (1: strong, the model alone; 0: its weak-denoise twin; "
                                                     "default 0.5), Real-ESRGAN's dni.")] = None,
    scene_cuts: Annotated[str, typer.Option("--scene-cuts", help="auto: detect scene cuts (PySceneDetect) so no "
                                            "clip, window or cross-fade crosses one (recurrent and sliding-window "
                                            "models); off; or FILE: frame numbers or times, one per line, or a "
                                            "PySceneDetect scene-list CSV.")] = "auto",
    scene_detector: Annotated[str, typer.Option("--scene-detector", help="content (HSV frame difference) or "
                                                "adaptive (relative to the neighbours' difference).")] = "content",
    scene_threshold: Annotated[Optional[float], typer.Option("--scene-threshold", help="The detector's threshold "
                                                             "(default: PySceneDetect's, 27 content / 3 adaptive).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> int:
    """Upscale IN to OUT, keeping audio, subtitles, chapters, timestamps, rotation and colour tags."""
    from upvid.job import EngineFactory, GlobalError, JobOptions, JobResult, plan_batch, run_job
    from upvid.engine import resolve_device

    if bit_depth is not None and bit_depth not in (8, 10, 16):
        raise UsageError(f"--bit-depth must be 8 or 10 (16 for PNG output), got {bit_depth}")
    if bit_depth is not None and pix_fmt != "auto":
        raise UsageError("give --bit-depth or --pix-fmt, not both")
    if bit_depth == 8:
        pix_fmt = "yuv420p"
    if segment_frames < 1 or not segment_seconds > 0:  # `not >` also refuses nan
        raise UsageError("--segment-frames and --segment-seconds must be > 0")
    from upvid.job.stream import is_pipe, pipe_format, run_stream

    piped = output_dir is None and len(paths) == 2 and any(is_pipe(p) for p in paths)
    if any(is_pipe(p) for p in paths) and not piped:
        raise UsageError("- (stdin/stdout) is for a single IN OUT, not a batch")
    if piped:
        if is_pipe(paths[1]):
            pipe_format(format, "--format")
            if json_out:
                raise UsageError("--json prints on stdout, which carries the stream when OUT is -")
        elif format is not None:
            raise UsageError("--format goes with OUT - or --output-dir (a single OUT's suffix picks its container)")
        if input_format is not None and not is_pipe(paths[0]):
            raise UsageError("--input-format goes with IN - (a file's format is detected)")
        pipe_format(input_format, "--input-format")
    elif input_format is not None:
        raise UsageError("--input-format goes with IN - (a file's format is detected)")
    batch_formats = (*BATCH_FORMATS, "images", "frames", "dir", "folder")
    if not piped and format is not None and format.lower().lstrip(".") not in batch_formats:
        raise UsageError(f"--format must be one of {', '.join(BATCH_FORMATS)}, got {format!r}")
    from upvid.io.mux import AUDIO_CODECS
    from upvid.io.span import parse_span
    from upvid.models.weights import check_weights_dir

    check_weights_dir(weights_dir)

    if audio_codec not in AUDIO_CODECS:
        raise UsageError(f"--audio-codec must be one of {', '.join(AUDIO_CODECS)}, got {audio_codec!r}")
    if no_audio and audio_codec != "copy":
        raise UsageError("give --no-audio or --audio-codec, not both")
    out_size = _parse_size(size) if size is not None else None
    opts = JobOptions(model=model, scale=scale, device=device, dtype=dtype, chunk=chunk, overlap=overlap, tile=tile,
                      tile_overlap=tile_overlap, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                      bit_depth=bit_depth, fps=_parse_fps(fps), weights_dir=weights_dir, overwrite=overwrite,
                      resume=resume, skip_existing=skip_existing, segment_frames=segment_frames,
                      segment_seconds=segment_seconds, random_weights=random_weights, compile=compile,
                      outscale=outscale, size=out_size, height=height, audio_codec="none" if no_audio else audio_codec,
                      audio_bitrate=_parse_bitrate(audio_bitrate) if audio_bitrate else None, suffix=suffix,
                      scene_cuts=scene_cuts, scene_detector=scene_detector, scene_threshold=scene_threshold,
                      span=parse_span(start, duration, frames), denoise=denoise, deinterlace=deinterlace,
                      encoder=encoder, backend=backend)
    resolve_device(device)  # a bad --device is a usage error before any file is touched
    if piped:
        return _run_piped(paths[0], paths[1], opts, model, format, input_format, quiet, run_stream, EngineFactory)
    if output_dir is None:
        if len(paths) != 2:
            raise UsageError(f"give IN OUT, or several inputs with --output-dir DIR (got {len(paths)} paths)")
        if format is not None:
            raise UsageError("--format goes with --output-dir (a single OUT's suffix picks its container)")
        jobs = [(paths[0], paths[1], None)]
        batch = False
    else:
        if output_dir.exists() and not output_dir.is_dir():
            raise OutputError(f"{output_dir}: not a directory")
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{output_dir}: cannot create ({e.strerror or e})") from e
        jobs = plan_batch(paths, output_dir, format, suffix)
        for _, out, _ in jobs:  # inputs sharing a name keep their folder structure under --output-dir
            if out is not None and out.parent != output_dir:
                try:
                    out.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise OutputError(f"{out.parent}: cannot create ({e.strerror or e})") from e
        batch = True

    if devices is not None or ray is not None:
        return _run_distributed(jobs, opts, devices, ray, workers, threads, chunk_frames, json_out, quiet)
    engines = EngineFactory(opts)
    results: list[JobResult] = []
    first_code = 0
    n = len(jobs)
    for k, (inp, out, problem) in enumerate(jobs, 1):
        tag = f"[{k}/{n}] " if batch else ""
        try:
            if problem is not None:
                raise problem
            progress = _progress(quiet)  # a fresh bar per input
            if progress is not None:
                with progress:
                    task = progress.add_task("upscale", total=None, fps=0.0)

                    def on_frame(done: int, total: int, progress=progress, task=task) -> None:
                        elapsed = progress.tasks[task].elapsed or 1e-9
                        progress.update(task, completed=done, total=total or None, fps=done / elapsed)

                    r = run_job(inp, out, opts, engines, on_frame=on_frame)
            else:
                r = run_job(inp, out, opts, engines)
        except GlobalError as g:
            if json_out:
                results.append(JobResult(str(inp), str(out) if out else None, "failed", g.error.exit_code, str(g.error)))
                print(json.dumps(_summary(results), indent=1))
            raise g.error from None
        except UpvidError as e:
            r = JobResult(str(inp), str(out) if out else None, "failed", e.exit_code, " ".join(str(e).split()))
            if not batch:
                if json_out:
                    print(json.dumps(_summary([r]), indent=1))
                raise
            first_code = first_code or e.exit_code
            _line(f"{tag}{inp}: failed (exit {e.exit_code}): {r.error}")
            results.append(r)
            continue
        results.append(r)
        if r.status == "skipped":
            if not quiet:
                _line(f"{tag}{inp} -> {out}: skipped (output exists)")
        elif not quiet:
            resumed = f", resumed after {r.resumed_from}" if r.resumed_from else ""
            fps_ = r.frames / r.seconds if r.seconds else 0.0
            net = engines.net
            how = r.backend or f"{engines.device}, {str(engines.dtype).removeprefix('torch.')}"
            _line(f"{tag}{inp} -> {out}: ok, {r.frames} frames{resumed}, {r.size} ({model}, x{net.scale}, "
                  f"{how}) in {r.seconds:.1f} s, {fps_:.2f} fps")
    if json_out:
        print(json.dumps(_summary(results), indent=1))
    return first_code


def _run_distributed(jobs, opts, devices, ray, workers, threads, chunk_frames, json_out, quiet) -> int:
    """``--devices`` / ``--ray``: every input's chunks over the workers (:mod:`upvid.job.distribute`)."""
    from upvid.job import GlobalError
    from upvid.job.broker import LocalBroker, RayBroker, parse_devices
    from upvid.job.distribute import run_distributed

    if devices is not None and ray is not None:
        raise UsageError("give --devices (this machine) or --ray (a cluster), not both")
    if threads < 1 or (workers is not None and workers < 1) or chunk_frames < 1:
        raise UsageError("--threads, --workers and --chunk-frames must be >= 1")
    for _, _, problem in jobs:
        if problem is not None:
            raise problem
    pairs = [(i, o) for i, o, _ in jobs]
    if devices is not None:
        broker = LocalBroker(opts, parse_devices(devices))
    else:
        broker = RayBroker(opts, None if ray in ("", "local") else ray, workers=workers, threads=threads)
    try:
        def on_chunk(k: int, index: int, frames: int) -> None:
            if not quiet:
                _line(f"{pairs[k][0]}: chunk {index} done ({frames} frames)")

        results = run_distributed(pairs, opts, broker, chunk_frames=chunk_frames, on_chunk=on_chunk)
    except GlobalError as g:
        raise g.error from None
    finally:
        broker.close()
    for r in results:
        if not quiet:
            _line(f"{r.input} -> {r.output}: {r.status}, {r.frames} frames, {r.size} in {r.seconds:.1f} s")
    if json_out:
        print(json.dumps(_summary(results), indent=1))
    return 0


def _run_piped(inp, out, opts, model, format, input_format, quiet, run_stream, factory) -> int:
    """IN or OUT is ``-``: one streaming job (:mod:`upvid.job.stream`); messages on stderr only."""
    from upvid.job import GlobalError

    engines = factory(opts)
    progress = _progress(quiet)
    try:
        if progress is not None:
            with progress:
                task = progress.add_task("upscale", total=None, fps=0.0)

                def on_frame(done: int, total: int) -> None:
                    elapsed = progress.tasks[task].elapsed or 1e-9
                    progress.update(task, completed=done, total=None, fps=done / elapsed)

                r = run_stream(inp, out, opts, engines, input_format=input_format, output_format=format,
                               on_frame=on_frame)
        else:
            r = run_stream(inp, out, opts, engines, input_format=input_format, output_format=format)
    except GlobalError as g:
        raise g.error from None
    except UpvidError as e:
        from upvid.errors import PipeClosedError

        if isinstance(e, PipeClosedError):  # nothing more can be written there, not even at exit
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except OSError:
                pass
        raise
    if not quiet:
        fps_ = r.frames / r.seconds if r.seconds else 0.0
        _line(f"{inp} -> {out}: ok, {r.frames} frames, {r.size} ({model}, x{engines.net.scale}, {engines.device}) "
              f"in {r.seconds:.1f} s, {fps_:.2f} fps")
    return 0


def _summary(results) -> dict:
    return {
        "ok": sum(r.status == "ok" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "exit_code": next((r.exit_code for r in results if r.status == "failed"), 0),
        "results": [r.to_dict() for r in results],
    }


