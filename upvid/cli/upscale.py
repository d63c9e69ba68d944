"""`upvid upscale IN OUT` (also `upvid IN OUT`): the main job."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from upvid.cli.app import app, err
from upvid.cli.app import DEFAULT_MODEL
from upvid.errors import OutputError, UsageError


def _progress(total: int, quiet: bool):
    """A Rich progress bar on stderr, or ``None`` when quiet or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]upscaling"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]:.2f} fps"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=False,
    )


@app.command("upscale")
def upscale(
    input: Annotated[Path, typer.Argument(help="Input video file.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Output video file (container from its suffix).", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (see `upvid models`).")] = DEFAULT_MODEL,
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", help="Upscaling factor (default: the model's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16.")] = "auto",
    chunk: Annotated[Optional[int], typer.Option(help="Recurrent: clip length; sliding window: frames per batch.")] = None,
    overlap: Annotated[Optional[int], typer.Option(help="Recurrent: frames shared by consecutive clips.")] = None,
    tile: Annotated[Optional[int], typer.Option(help="Spatial tile in LR pixels (0: whole frame).")] = None,
    tile_overlap: Annotated[Optional[int], typer.Option(help="Tile overlap in LR pixels.")] = None,
    codec: Annotated[str, typer.Option(help="Video encoder (libx264, libx265, libsvtav1, libvpx-vp9...).")] = "libx264",
    crf: Annotated[int, typer.Option(help="Encoder constant rate factor (quality, lower is better).")] = 18,
    preset: Annotated[str, typer.Option(help="Encoder speed preset.")] = "medium",
    pix_fmt: Annotated[str, typer.Option("--pix-fmt", help="Output pixel format (yuv420p, yuv420p10le...).")] = "yuv420p",
    weights_dir: Annotated[Optional[Path], typer.Option(envvar="UPVID_WEIGHTS_DIR", help="Local folder searched for checkpoints before the Hub.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Upscale IN to OUT, keeping audio, subtitles, timestamps and colour tags."""
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype
    from upvid.engine.pipeline import run_pipeline
    from upvid.io import VideoWriter, probe, read_frames, unique_temp_path
    from upvid.models import load_model

    if output.exists() and not overwrite:
        raise OutputError(f"{output}: exists (use --overwrite to replace it)")
    if output.exists() and input.exists() and output.resolve() == input.resolve():
        raise UsageError("output would overwrite the input")
    if not output.parent.exists():
        raise OutputError(f"{output.parent}: no such directory")
    info = probe(input)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    net = load_model(model, scale, weights_dir=weights_dir, device=dev)
    cfg = EngineConfig.for_model(net, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap, device=dev, dtype=dt)
    engine = Engine(net, cfg)
    s = net.scale
    tmp = unique_temp_path(output)
    writer = VideoWriter(tmp, info, width=info.width * s, height=info.height * s, codec=codec, crf=crf,
                         preset=preset, pix_fmt=pix_fmt)
    progress = _progress(info.frames, quiet)
    try:
        if progress is not None:
            with progress:
                task = progress.add_task("upscale", total=info.frames or None, fps=0.0)

                def on_frame(n: int) -> None:
                    elapsed = progress.tasks[task].elapsed or 1e-9
                    progress.update(task, completed=n, fps=n / elapsed)

                stats = run_pipeline(read_frames(input, info), engine, writer.write, on_frame=on_frame)
        else:
            stats = run_pipeline(read_frames(input, info), engine, writer.write)
        writer.close()
        os.replace(tmp, output)
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    if not quiet:
        err.print(f"upvid: {output}: {stats.frames} frames, {info.width}x{info.height} -> "
                  f"{info.width * s}x{info.height * s} ({model}, x{s}, {dev}, {str(dt).removeprefix('torch.')}) "
                  f"in {stats.total_s:.1f} s, {stats.fps:.2f} fps")
