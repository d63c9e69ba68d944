"""Rich tables of bench results on stderr."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upvid.bench.quality import QualityResult
    from upvid.bench.speed import SpeedResult


def fmt(x: float, nd: int) -> str:
    return "inf" if math.isinf(x) else f"{x:.{nd}f}"


def _console(console: Any) -> Any:
    from rich.console import Console

    return console or Console(stderr=True, highlight=False)


def _quality_title(r: QualityResult) -> str:
    deg = r.lr_source if r.lr_source not in ("BI", "BD") else (
        f"BD sigma {r.sigma:g}" if r.degradation == "BD" and r.sigma is not None else r.degradation)
    return f"x{r.scale} on {r.dataset} ({deg}), {r.device} {r.dtype}, crop {r.crop_border}"


def render_quality(result: QualityResult, console: Any = None) -> None:
    """Print ``result`` as a Rich table on stderr (or on ``console``)."""
    from rich.table import Table

    console = _console(console)
    table = Table(title=f"{result.model} {_quality_title(result)}", title_justify="left")
    for col in ("sequence", "frames", "LR size", "PSNR-Y", "SSIM-Y", "PSNR-RGB", "model fps"):
        table.add_column(col, justify="left" if col == "sequence" else "right")
    for s in result.sequences:
        fps = s.frames / s.model_s if s.model_s > 0 else math.inf
        table.add_row(s.name, str(s.frames), f"{s.lr_size[1]}x{s.lr_size[0]}", fmt(s.psnr_y, 2), fmt(s.ssim_y, 4),
                      fmt(s.psnr_rgb, 2), fmt(fps, 2))
    avg = result.average
    table.add_section()
    table.add_row("average", str(result.frames), "", fmt(avg["psnr_y"], 2), fmt(avg["ssim_y"], 4),
                  fmt(avg["psnr_rgb"], 2), fmt(result.timing["fps"], 2), style="bold")
    pub = result.published
    if pub:
        metric = "psnr_rgb" if result.dataset.startswith("reds") else "psnr_y"
        ssim = "" if pub.get("ssim") is None else f"{pub['ssim']:.4f}"
        cells = {"psnr_y": "", "psnr_rgb": ""}
        cells[metric] = f"{pub['psnr']:.2f}"
        table.add_row("published", "", "", cells["psnr_y"], ssim if metric == "psnr_y" else "", cells["psnr_rgb"], "",
                      style="dim")
    console.print(table)
    t = result.timing
    console.print(f"total {t['total_s']:.1f} s (read {t['read_s']:.1f}, degrade {t['degrade_s']:.1f}, "
                  f"model {t['model_s']:.1f}, metrics {t['metrics_s']:.1f})", style="dim")


def render_quality_compare(results: list[QualityResult], console: Any = None) -> None:
    """Several models on the same data in one Rich table: PSNR-Y and SSIM-Y per model (REDS: RGB PSNR
    and PSNR-Y); the JSON has every metric."""
    from rich.table import Table

    console = _console(console)
    first = results[0]
    reds = first.dataset.startswith("reds")
    cols = (("PSNR-RGB", "psnr_rgb", 2), ("PSNR-Y", "psnr_y", 2)) if reds else (("PSNR-Y", "psnr_y", 2),
                                                                                 ("SSIM-Y", "ssim_y", 4))
    console.print(f"{' vs '.join(r.model for r in results)}: {_quality_title(first)}", style="bold")
    table = Table()
    table.add_column("sequence")
    table.add_column("frames", justify="right")
    for r in results:
        for label, _, _ in cols:
            table.add_column(f"{r.model}\n{label}", justify="right")
    names = list(dict.fromkeys(s.name for r in results for s in r.sequences))
    for name in names:
        seqs = [next((s for s in r.sequences if s.name == name), None) for r in results]
        row = [name, str(next(s.frames for s in seqs if s is not None))]
        for s in seqs:
            row += ["-"] * len(cols) if s is None else [fmt(getattr(s, k), nd) for _, k, nd in cols]
        table.add_row(*row)
    table.add_section()
    row = ["average", str(first.frames)]
    for r in results:
        row += [fmt(r.average[k], nd) for _, k, nd in cols]
    table.add_row(*row, style="bold")
    if any(r.published for r in results):
        row = ["published", ""]
        for r in results:
            p = r.published or {}
            vals = {"psnr_rgb" if reds else "psnr_y": p.get("psnr"), "ssim_y": p.get("ssim")}
            row += ["" if vals.get(k) is None else fmt(vals[k], nd) for _, k, nd in cols]
        table.add_row(*row, style="dim")
    console.print(table)
    console.print("; ".join(f"{r.model}: model {fmt(r.timing['fps'], 2)} fps, total {r.timing['total_s']:.1f} s"
                            for r in results), style="dim")


def render_speed(results: list[SpeedResult], console: Any = None) -> None:
    """Print one or more speed results as a Rich table on stderr (a column per model)."""
    from rich.table import Table

    console = _console(console)
    r0 = results[0]
    inp = r0.input
    title = (f"speed: {inp['frames']} frames {inp['lr_size'][1]}x{inp['lr_size'][0]} -> "
             f"{inp['hr_size'][1]}x{inp['hr_size'][0]} ({inp['source']}), {r0.device_name}, "
             f"median of {len(r0.runs)} after {r0.warmup} warm-up")
    console.print(title, style="bold")
    table = Table()
    table.add_column("")
    for r in results:
        how = (f"openvino {r.backend.get('precision')}" if r.backend.get("name") == "openvino" else r.dtype)
        table.add_column(f"{r.model}\nx{r.scale} {r.device} {how}", justify="right")
    stages = ("decode", "model", "stitch", "encode", "end_to_end")
    for st in stages:
        table.add_row(f"{st.replace('_', ' ')} fps", *[fmt(r.fps[st], 2) for r in results],
                      style="bold" if st == "end_to_end" else None)
    for st in stages:
        table.add_row(f"{st.replace('_', ' ')} s", *[f"{r.seconds[st]:.3f}" for r in results], style="dim")
    table.add_section()
    table.add_row("peak RSS MiB", *[f"{r.memory['peak_rss_mib']:.0f}" for r in results])
    if any(r.memory.get("cuda_peak_allocated_mib") is not None for r in results):
        table.add_row("peak CUDA MiB", *["-" if r.memory.get("cuda_peak_allocated_mib") is None
                                         else f"{r.memory['cuda_peak_allocated_mib']:.0f}" for r in results])
    table.add_row("engine", *[f"chunk {r.engine['chunk']} tile {r.engine['tile']}" for r in results], style="dim")
    table.add_row("load s", *[f"{r.load_s:.2f}" for r in results], style="dim")
    console.print(table)
    v = r0.versions
    console.print(f"torch {v['torch']}, av {v['av']} (libavcodec {v.get('ffmpeg_libavcodec')}), "
                  f"{r0.host.get('torch_threads')} torch threads on {r0.host.get('cpu_count')} CPUs; "
                  f"encoder {r0.encoder['codec']} crf {r0.encoder['crf']} {r0.encoder['preset']}; "
                  f"RSS: {r0.memory['rss_method']}{', isolated' if r0.isolated else ''}", style="dim")
