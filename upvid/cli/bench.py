"""`upvid bench`: quality (PSNR/SSIM on a dataset or a video) and speed (fps per stage) of models.

Modes (see :mod:`upvid.bench` for the protocols and the JSON schemas):

- ``upvid bench -m M --dataset DIR [--degradation bi|bd] ...``: PSNR-Y / SSIM-Y / RGB PSNR per
  sequence and on average (Vid4, UDM10, REDS4... folders of GT frames).
- ``upvid bench -m M --video clip.mp4``: the clip's own frames are the GT (BI-degraded input).
- ``upvid bench -m M --speed [--video clip.mp4 | --size 180x320 --frames 32] [--repeats 3]``.
- Several models (``--compare M1 M2``, ``-m M1 -m M2`` or ``upvid bench M1 M2 ...``) are run on
  the same data and printed in one table / one JSON document.

Tables go to stderr; ``--json`` prints the machine-readable result on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from upvid.cli.app import app, err
from upvid.errors import UsageError


def _line(msg: str) -> None:
    sys.stderr.write("upvid: " + " ".join(msg.split()) + "\n")
    sys.stderr.flush()


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be HEIGHTxWIDTH of the LR clip, e.g. 180x320, got {text!r}") from None
    if h < 16 or w < 16:
        raise UsageError(f"--size must be at least 16x16, got {text}")
    return h, w


@app.command("bench")
def bench(
    models: Annotated[Optional[list[str]], typer.Argument(
        help="Model names (same as --model; two or more are compared side by side).", show_default=False,
        metavar="MODEL")] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", "-m", help="Model to measure (repeat to compare). `matlab-bicubic` (quality only) is the "
        "literature's Bicubic baseline.", show_default=False)] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Compare the models given after it "
                                          "(`--compare M1 M2`) in one table / JSON.")] = False,
    dataset: Annotated[Optional[Path], typer.Option(help="Quality: folder of GT sequences (e.g. vid4/GT), one "
                                                    "sub-folder of PNG frames per sequence.")] = None,
    video: Annotated[Optional[Path], typer.Option(help="Quality: score on this video's own frames (BI-degraded "
                                                  "input). Speed: the clip to decode, upscale and encode.")] = None,
    speed: Annotated[bool, typer.Option("--speed", help="Measure fps of decode, model, stitch, encode and end "
                                        "to end instead of quality.")] = False,
    degradation: Annotated[str, typer.Option(help="Quality: bi (MATLAB bicubic down) or bd (Gaussian blur "
                                             "+ subsample).")] = "bi",
    sigma: Annotated[Optional[float], typer.Option(help="BD blur sigma in HR pixels [default: 1.6].",
                                                   show_default=False)] = None,
    lr_dir: Annotated[Optional[Path], typer.Option("--lr-dir", help="Quality: read the LR frames from this "
                                                   "folder (same sequence names) instead of degrading.")] = None,
    sequence: Annotated[Optional[list[str]], typer.Option("--sequence", help="Quality: only this sequence "
                                                          "(repeatable).", show_default=False)] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Quality: only the first N frames "
                                                      "of each sequence (not comparable to papers).")] = None,
    crop_border: Annotated[int, typer.Option("--crop-border", help="Quality: pixels cropped from each side "
                                             "before scoring.")] = 0,
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", help="Upscaling factor (default: the "
                                                 "model's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[Optional[str], typer.Option(help="fp32, fp16, bf16 or auto [default: fp32 for quality, "
                                                 "auto for speed].", show_default=False)] = None,
    chunk: Annotated[Optional[int], typer.Option(
        "--clip", "--chunk", help="Recurrent: clip length in frames; sliding window: windows per model call "
                                  "(--chunk is the older name).")] = None,
    overlap: Annotated[Optional[int], typer.Option(help="Recurrent: frames shared by consecutive clips.")] = None,
    tile: Annotated[Optional[int], typer.Option(help="Spatial tile in LR pixels (0: whole frame).")] = None,
    tile_overlap: Annotated[Optional[int], typer.Option(help="Tile overlap in LR pixels.")] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(envvar="UPVID_WEIGHTS_DIR", help="Local folder searched "
                                                        "for checkpoints before the Hub.")] = None,
    random_weights: Annotated[bool, typer.Option("--random-weights", help="Random weights instead of the "
                                                 "checkpoint (speed of architectures without weights here).")] = False,
    size: Annotated[str, typer.Option(help="Speed: HEIGHTxWIDTH of the synthetic LR clip.")] = "180x320",
    frames: Annotated[Optional[int], typer.Option(help="Speed: synthetic clip length [default: 32], or only "
                                                  "the first N frames of --video.", show_default=False)] = None,
    repeats: Annotated[int, typer.Option(help="Speed: timed runs after one warm-up (median reported).")] = 3,
    preset: Annotated[str, typer.Option(help="Speed: encoder preset.")] = "medium",
    crf: Annotated[int, typer.Option(help="Speed: encoder CRF.")] = 18,
    isolate: Annotated[Optional[bool], typer.Option("--isolate/--no-isolate", help="Speed: measure each model "
                                                    "in a fresh process (clean peak RSS) [default: when "
                                                    "comparing].", show_default=False)] = None,
    backend: Annotated[Optional[list[str]], typer.Option(
        "--backend", help="Speed: auto, torch or openvino; repeat (or comma-separate) to compare backends "
        "side by side.", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table or progress lines on stderr.")] = False,
) -> None:
    """Measure PSNR/SSIM (--dataset DIR or --video FILE) or speed (--speed) of one or more models."""
    from upvid import bench as B
    from upvid.engine import resolve_device

    names = list(model or []) + list(models or [])
    if not names:
        raise UsageError("give a model: --model NAME (or --compare M1 M2)")
    if len(set(names)) != len(names):
        raise UsageError(f"a model is given twice: {' '.join(names)}")
    backends = [b.strip() for v in (backend or []) for b in v.split(",") if b.strip()]
    if compare and len(names) * max(1, len(backends)) < 2:
        raise UsageError("--compare needs two or more models (or backends), e.g. --compare bicubic matlab-bicubic")
    if backends and not speed:
        raise UsageError("--backend is a --speed option (quality runs on torch fp32)")
    deg = degradation.lower()
    if deg not in ("bi", "bd"):
        raise UsageError(f"--degradation must be bi or bd, got {degradation!r}")
    if sigma is not None and deg != "bd":
        raise UsageError("--sigma goes with --degradation bd")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {max_frames}")
    resolve_device(device)
    settings = dict(scale=scale, device=device, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap,
                    pretrained=not random_weights, weights_dir=weights_dir)

    if speed:
        bad = [o for o, v in (("--dataset", dataset), ("--lr-dir", lr_dir), ("--sequence", sequence),
                              ("--max-frames", max_frames), ("--degradation bd", deg == "bd" or None)) if v]
        if bad:
            raise UsageError(f"{', '.join(bad)}: quality options, not for --speed")
        if B.MATLAB_BICUBIC in names:
            raise UsageError(f"{B.MATLAB_BICUBIC} is a quality baseline only (use `bicubic` for speed)")
        hw = _parse_size(size)
        iso = len(names) * max(1, len(backends)) > 1 if isolate is None else isolate

        def done(r) -> None:
            if not quiet:
                how = f"{r.backend.get('name')} {r.backend.get('precision') or r.dtype}"
                _line(f"{r.model} ({how}): {r.fps['end_to_end']:.2f} fps end to end, model {r.fps['model']:.2f} fps, "
                      f"peak RSS {r.memory['peak_rss_mib']:.0f} MiB")

        opts = B.SpeedOptions(frames=frames, repeats=repeats, dtype=dtype or "auto", crf=crf, preset=preset,
                              **settings)
        results = B.run_speed_many(names, video=video, size=hw, options=opts, isolate=iso, on_result=done,
                                   backends=backends or None)
        if not quiet:
            B.render_speed(results, err)
        if json_out:
            print(results[0].to_json() if len(results) == 1 else B.compare_json("speed", results))
        return

    if dataset is not None and video is not None:
        raise UsageError("give --dataset DIR or --video FILE, not both")
    if dataset is None and video is None:
        raise UsageError("give --dataset DIR (GT sequences) or --video FILE for quality, or --speed")
    if video is not None and (lr_dir is not None or sequence):
        raise UsageError("--lr-dir and --sequence go with --dataset")
    if lr_dir is not None and sigma is not None:
        raise UsageError("--sigma has no effect with --lr-dir")

    def seq_done(s) -> None:
        if not quiet:
            _line(f"{s.name}: {s.frames} frames, PSNR-Y {B.fmt(s.psnr_y, 2)} dB, SSIM-Y {B.fmt(s.ssim_y, 4)}")

    qopts = B.QualityOptions(degradation=deg.upper(), dtype=dtype or "fp32", sigma=1.6 if sigma is None else sigma,
                             crop_border=crop_border, max_frames=max_frames, **settings)
    results = []
    for name in names:
        if len(names) > 1 and not quiet:
            _line(f"{name}:")
        if dataset is not None:
            r = B.run_quality(name, dataset, options=qopts, lr_dir=lr_dir, sequences=sequence or None,
                              on_sequence=seq_done)
        else:
            r = B.run_quality_video(name, video, options=qopts, on_sequence=seq_done)
        results.append(r)
    if not quiet:
        if len(results) == 1:
            B.render_quality(results[0], err)
        else:
            B.render_quality_compare(results, err)
    if json_out:
        print(results[0].to_json() if len(results) == 1 else B.compare_json("quality", results))
