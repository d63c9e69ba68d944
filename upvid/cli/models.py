"""`upvid models` and `upvid models fetch`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from upvid.cli.app import app, err
from rich.console import Console

models_app = typer.Typer(help="List models, or pre-download their weights.", invoke_without_command=True,
                         rich_markup_mode=None)
app.add_typer(models_app, name="models")


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
