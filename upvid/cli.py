"""Command line: ``upvid IN OUT [options]``, ``upvid models``, ``upvid bench``.

Errors raised anywhere as :class:`upvid.errors.UpvidError` become one line on stderr and the
exit code of their class (see :mod:`upvid.errors`); stdout carries only machine-readable output.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from upvid.errors import EXIT_INTERRUPTED, OutputError, UpvidError, UsageError

DEFAULT_MODEL = "basicvsrpp"
COMMANDS = {"upscale", "models", "bench", "degrade"}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="upvid: video super-resolution. `upvid IN OUT --model NAME --scale 4` upscales a video "
    "(the `upscale` word may be left out); `upvid models` lists models; `upvid bench` measures them.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List models, or pre-download their weights.", invoke_without_command=True,
                         rich_markup_mode=None)
app.add_typer(models_app, name="models")

err = Console(stderr=True, highlight=False)


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


@app.command("degrade")
def degrade(
    source: Annotated[Path, typer.Argument(help="HR frames: a folder of images (e.g. Vid4 GT) or a video.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="LR video to write (with a synthetic audio track unless --no-audio).", show_default=False)],
    scale: Annotated[int, typer.Option("--scale", "-s", help="Downscaling factor.")] = 4,
    degradation: Annotated[str, typer.Option(help="bi (MATLAB bicubic) or bd (Gaussian blur sigma then subsample).")] = "bi",
    sigma: Annotated[float, typer.Option(help="BD blur sigma in HR pixels.")] = 1.6,
    fps: Annotated[int, typer.Option(help="Frame rate for an image folder.")] = 25,
    audio: Annotated[bool, typer.Option(help="Add a synthetic AAC audio track (tone + beeps).")] = True,
    crf: Annotated[int, typer.Option(help="x264 CRF of the LR video (0: lossless).")] = 12,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Make an LR test clip from HR frames with the VSR literature's BI or BD degradation."""
    import torch

    from upvid.degrade import bd_degrade, bi_degrade, mod_crop
    from upvid.io import probe, read_frames, unique_temp_path
    from upvid.io.images import encode_clip, read_image_folder

    if degradation not in ("bi", "bd"):
        raise UsageError(f"--degradation must be bi or bd, got {degradation!r}")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: exists (use --overwrite to replace it)")
    if source.is_dir():
        frames = read_image_folder(source)
        rate = fps
    else:
        info = probe(source)
        frames = (f.rgb for f in read_frames(source, info, high_bit_depth=False))
        rate = info.fps

    def lr_frames():
        for hr in frames:
            x = mod_crop(torch.from_numpy(hr).permute(2, 0, 1)[None], scale)
            y = bi_degrade(x, scale) if degradation == "bi" else bd_degrade(x, scale, sigma)
            yield y[0].permute(1, 2, 0).contiguous().numpy()

    tmp = unique_temp_path(output)
    try:
        n = encode_clip(lr_frames(), tmp, fps=rate, crf=crf, tone_hz=440.0 if audio else None)
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    err.print(f"upvid: {output}: {n} LR frames ({degradation.upper()} x{scale})")


@app.command("bench")
def bench() -> None:
    """Measure speed and PSNR (not implemented yet: see the README)."""
    raise UsageError("`upvid bench` is not implemented yet")


@models_app.callback()
def models_list(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table.")] = False,
    weights_dir: Annotated[Optional[Path], typer.Option(envvar="UPVID_WEIGHTS_DIR", help="Local weights folder.")] = None,
) -> None:
    """List the models in weights.toml with their weights' cache state."""
    if ctx.invoked_subcommand is not None:
        return
    from upvid.models import list_models
    from upvid.weights import is_cached

    rows = []
    for name, rec in list_models().items():
        rows.append({
            "name": name, "family": rec.family, "scale": "any" if rec.scales == "any" else rec.scale,
            "frames": rec.frames, "params": rec.params, "license": rec.license, "train_data": rec.train_data,
            "degradation": rec.degradation, "psnr": rec.psnr,
            "weights": "none needed" if not rec.weights else ("cached" if is_cached(rec, weights_dir) else "not cached"),
        })
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="upvid models")
    for col in ("name", "family", "scale", "frames", "params", "train", "deg.", "PSNR (published)", "license", "weights"):
        table.add_column(col)
    for r in rows:
        psnr = ", ".join(f"{k} {v:.2f}" for k, v in r["psnr"].items())
        params = f"{r['params'] / 1e6:.2f} M" if r["params"] else "-"
        table.add_row(r["name"], r["family"], str(r["scale"]), str(r["frames"]), params, r["train_data"],
                      r["degradation"], psnr, r["license"], r["weights"])
    Console().print(table)


@models_app.command("fetch")
def models_fetch(
    names: Annotated[list[str], typer.Argument(help="Model names.")],
    weights_dir: Annotated[Optional[Path], typer.Option(envvar="UPVID_WEIGHTS_DIR", help="Local weights folder.")] = None,
) -> None:
    """Download, verify (sha256) and convert the weights of NAMES."""
    from upvid.models import get_record
    from upvid.weights import fetch

    for name in names:
        rec = get_record(name)
        if not rec.weights:
            err.print(f"upvid: {name}: no weights needed")
            continue
        path = fetch(rec, weights_dir)
        err.print(f"upvid: {name}: ready ({path})")


def _install_sigterm() -> None:
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps errors to one stderr line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in COMMANDS and args[0] not in ("--help", "-h", "--version"):
        args.insert(0, "upscale")  # `upvid IN OUT ...` without the subcommand word
    if args and args[0] == "--version":
        from upvid import __version__

        print(f"upvid {__version__}")
        raise SystemExit(0)
    logging.basicConfig(level=logging.WARNING, format="upvid: warning: %(message)s", stream=sys.stderr)
    _install_sigterm()
    try:
        rc = app(args=args, prog_name="upvid", standalone_mode=False)
        if rc == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130) and returns its code
            _fail("interrupted", EXIT_INTERRUPTED)
        if isinstance(rc, int) and rc:
            raise SystemExit(rc)
    except UpvidError as e:
        _fail(f"error: {e}", e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as e:
        if type(e).__name__ == "Abort":  # click/typer's Ctrl-C at a prompt
            _fail("interrupted", EXIT_INTERRUPTED)
        if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):  # click/typer usage
            cmd = args[0] if args and args[0] in COMMANDS else ""
            _fail(f"usage error: {e.format_message()} (see 'upvid {cmd} --help'.)".replace("  ", " "), e.exit_code)
        if os.environ.get("UPVID_DEBUG"):
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (set UPVID_DEBUG=1 for a traceback)", 1)


def _fail(message: str, code: int) -> None:
    """Print ``upvid: <message>`` as one line on stderr and exit with ``code``."""
    sys.stderr.write("upvid: " + " ".join(message.split()) + "\n")
    sys.stderr.flush()
    raise SystemExit(code) from None


if __name__ == "__main__":
    main()
