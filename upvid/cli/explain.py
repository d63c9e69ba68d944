"""`upvid explain`: a LAM attribution map of one output patch over the LR input frames."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from upvid.cli.app import app, err
from upvid.errors import OutputError, UsageError


def _pair(text: str | None, what: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{what} must be X,Y (integers), got {text!r}") from None
    return a, b


@app.command("explain")
def explain(
    source: Annotated[Path, typer.Argument(help="LR video (or image folder).", show_default=False)],
    figure: Annotated[Path, typer.Argument(help="PNG figure to write; the JSON goes next to it (.json) and to stdout.",
                                           show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Registry model.")] = "basicvsrpp",
    frame: Annotated[Optional[int], typer.Option(help="Output frame to explain (default: the middle of the span).")] = None,
    span: Annotated[Optional[int], typer.Option(help="LR frames read around it (default 7, or a longer window).")] = None,
    patch: Annotated[Optional[str], typer.Option(help="HR patch top-left X,Y, output px (default: the centre).")] = None,
    patch_size: Annotated[int, typer.Option(help="HR patch side (px); LAM's window.")] = 16,
    crop: Annotated[int, typer.Option(help="Side of the LR region analysed (px), centred on the patch: CPU cost.")] = 48,
    steps: Annotated[int, typer.Option(help="Integration steps of the blur path (LAM: 50).")] = 50,
    sigma: Annotated[float, typer.Option(help="Blur of the path's start, LR px (LAM: 1.2).")] = 1.2,
    kernel: Annotated[int, typer.Option(help="Blur kernel size (LAM: 9).")] = 9,
    random_weights: Annotated[bool, typer.Option(help="Random weights (seeded, --seed): the architecture alone.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of --random-weights.")] = 0,
    weights_dir: Annotated[Optional[Path], typer.Option(help="Folder searched for checkpoints first.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace FIGURE and its .json if they exist.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress on stderr.")] = False,
) -> None:
    """Which LR pixels, in which frames, one output patch comes from: LAM (Gu and Dong, CVPR 2021)."""
    import numpy as np
    import torch

    from upvid.engine.device import resolve_device
    from upvid.explain.figure import render
    from upvid.explain.lam import frame_reach, local_attribution
    from upvid.explain.target import default_span, frame_function, read_span
    from upvid.io import unique_temp_path
    from upvid.io.images import write_image
    from upvid.models import load_model
    from upvid.models.weights import check_weights_dir

    report = figure.with_suffix(".json")
    if figure.suffix.lower() != ".png":
        raise UsageError(f"{figure}: the figure is a PNG (name it .png)")
    for out in (figure, report):
        if out.exists() and not overwrite:
            raise OutputError(f"{out}: exists (use --overwrite to replace it)")
    if patch_size < 2 or crop < 8 or (span is not None and span < 1):
        raise UsageError("--patch-size must be >= 2, --crop >= 8 and --span >= 1")
    check_weights_dir(weights_dir)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    net = load_model(model, pretrained=not random_weights, weights_dir=weights_dir, device=dev)
    s = net.scale
    n_span = span or default_span(net)
    centre = n_span // 2 if frame is None else frame
    frames, first, target = read_span(source, centre, n_span)
    _, fh, fw, _ = frames.shape
    px, py = _pair(patch, "--patch") or (fw * s // 2 - patch_size // 2, fh * s // 2 - patch_size // 2)
    if not (0 <= px and 0 <= py and px + patch_size < fw * s and py + patch_size < fh * s):
        raise UsageError(f"--patch {px},{py} (size {patch_size}) is not inside the {fw * s}x{fh * s} output")
    cw, ch = min(crop, fw), min(crop, fh)
    x0 = min(max((px + patch_size // 2) // s - cw // 2, 0), fw - cw)
    y0 = min(max((py + patch_size // 2) // s - ch // 2, 0), fh - ch)
    local = (px - s * x0, py - s * y0, patch_size)
    if local[0] + patch_size >= cw * s or local[1] + patch_size >= ch * s:
        raise UsageError(f"--patch does not fit in the {cw}x{ch} LR crop around it: raise --crop")
    lr_u8 = frames[:, y0:y0 + ch, x0:x0 + cw]
    lr = torch.from_numpy(np.ascontiguousarray(lr_u8)).permute(0, 3, 1, 2).float().div(255).to(dev)
    fn = frame_function(net, target, len(lr))

    def progress(i: int, n: int) -> None:
        if not quiet and (i % 10 == 0 or i == n):
            err.print(f"upvid explain: step {i}/{n}")

    t0 = time.perf_counter()
    attr = local_attribution(fn, lr, local, sigma=sigma, steps=steps, kernel=kernel, progress=progress)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        sr = fn(lr).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    picture = render(lr_u8, attr.heat, sr, target, local, s)
    result = {
        "model": model, "random_weights": random_weights, "input": str(source), "frame": first + target,
        "span": [first, first + len(lr) - 1], "crop": {"x": x0, "y": y0, "width": cw, "height": ch},
        "patch": {"x": px, "y": py, "size": patch_size}, "scale": s,
        "path": {"steps": steps, "sigma": sigma, "kernel": kernel},
        "diffusion_index": round(attr.diffusion_index, 3),
        "frame_share": [{"frame": first + i, "share": round(v, 6)} for i, v in enumerate(attr.frame_share)],
        "reach_frames": round(frame_reach(attr.frame_share, target), 4),
        "objective": attr.objective, "baseline_objective": attr.baseline_objective,
        "attribution_sum": attr.attribution_sum, "completeness_error": attr.completeness_error,
        "device": str(dev), "seconds": round(seconds, 2),
    }
    text = json.dumps(result, indent=1)
    tmp_png, tmp_json = unique_temp_path(figure), unique_temp_path(report)
    try:
        write_image(picture, tmp_png)
        tmp_json.write_text(text + "\n")
        os.replace(tmp_png, figure)
        os.replace(tmp_json, report)
    except BaseException:
        tmp_png.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
        raise
    print(text)
    if not quiet:
        shares = " ".join(f"{v:.2f}" for v in attr.frame_share)
        err.print(f"upvid explain: {figure}: diffusion index {attr.diffusion_index:.2f}, frame share [{shares}] "
                  f"(frame {first + target} at position {target}), {seconds:.1f} s")
