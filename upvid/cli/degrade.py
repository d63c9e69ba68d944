"""`upvid degrade`: make an LR test clip from HR frames (BI / BD)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from upvid.cli.app import app, err
from upvid.errors import OutputError, UsageError


@app.command("degrade")
def degrade(
    source: Annotated[Path, typer.Argument(help="HR frames: a folder of images (e.g. Vid4 GT) or a video.", show_default=False)],
    output: Annotated[Path, typer.Argument(
        help="LR video to write. From a video: its audio/subtitles and timestamps are kept; from images: "
             "a synthetic audio track is added unless --no-audio.", show_default=False)],
    scale: Annotated[int, typer.Option("--scale", "-s", help="Downscaling factor.")] = 4,
    degradation: Annotated[str, typer.Option(help="bi (MATLAB bicubic) or bd (Gaussian blur sigma then subsample).")] = "bi",
    sigma: Annotated[float, typer.Option(help="BD blur sigma in HR pixels.")] = 1.6,
    fps: Annotated[int, typer.Option(help="Frame rate for an image folder.")] = 25,
    audio: Annotated[bool, typer.Option(help="Image folders: add a synthetic AAC audio track (tone + beeps).")] = True,
    crf: Annotated[int, typer.Option(help="x264 CRF of the LR video (0: lossless).")] = 12,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Make an LR test clip from HR frames with the VSR literature's BI or BD degradation."""
    import torch

    from upvid.bench.degrade import bd_degrade, bi_degrade, mod_crop
    from upvid.io import VideoWriter, probe, read_frames, unique_temp_path
    from upvid.io.images import encode_clip, read_image_folder

    if degradation not in ("bi", "bd"):
        raise UsageError(f"--degradation must be bi or bd, got {degradation!r}")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: exists (use --overwrite to replace it)")
    def lr(hr):
        x = mod_crop(torch.from_numpy(hr).permute(2, 0, 1)[None], scale)
        y = bi_degrade(x, scale) if degradation == "bi" else bd_degrade(x, scale, sigma)
        return y[0].permute(1, 2, 0).contiguous().numpy()

    tmp = unique_temp_path(output)
    try:
        if source.is_dir():
            n = encode_clip((lr(f) for f in read_image_folder(source)), tmp, fps=fps, crf=crf,
                            tone_hz=440.0 if audio else None)
        else:  # a video: same timestamps, its own audio and subtitles copied
            info = probe(source)
            writer = VideoWriter(tmp, info, width=info.width // scale, height=info.height // scale, crf=crf)
            n = 0
            try:
                for f in read_frames(source, info, high_bit_depth=False):
                    writer.write(lr(f.rgb), f.pts)
                    n += 1
                writer.close()
            except BaseException:
                writer.abort()
                raise
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    err.print(f"upvid: {output}: {n} LR frames ({degradation.upper()} x{scale})")
