"""`upvid models` and `upvid models fetch`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from upvid.cli.app import app, err
from upvid.models.weights import check_weights_dir
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
    check_weights_dir(weights_dir)
    if ctx.invoked_subcommand is not None:
        return
    from upvid.models import list_models
    from upvid.models.weights import file_specs, hash_state, source_labels, weights_state

    rows = []
    for name, rec in list_models().items():
        rows.append({
            "name": name, "family": rec.family, "kind": _kind_of(rec), "scale": "any" if rec.scales == "any" else rec.scale,
            "frames": rec.frames, "params": rec.params, "license": rec.license, "train_data": rec.train_data,
            "degradation": rec.degradation, "psnr": rec.psnr, "weights": weights_state(rec, weights_dir),
            "embedded": bool(rec.embedded), "sources": source_labels(rec),
            "hash": hash_state(file_specs(rec)[0]) if rec.weights else "-",
        })
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    console = Console()
    if console.is_terminal:
        render_table(rows, console)
    else:
        sys.stdout.write(plain_table(rows))


# (heading, row -> text); the first is the name, never cut; a terminal narrower than the full
# table gets the leading columns that fit (the rest: `upvid models | less -S`, or --json).
_COLUMNS: list[tuple[str, Callable[[dict], str]]] = [
    ("name", lambda r: r["name"]),
    ("kind", lambda r: r["kind"]),
    ("scale", lambda r: str(r["scale"])),
    ("weights", lambda r: r["weights"]),
    ("params", lambda r: f"{r['params'] / 1e6:.2f} M" if r["params"] else "-"),
    ("PSNR (published)", lambda r: ", ".join(f"{k} {v:.2f}" for k, v in r["psnr"].items())),
    ("deg.", lambda r: r["degradation"]),
    ("license", lambda r: r["license"]),
    ("train", lambda r: r["train_data"]),
    ("sources", lambda r: ", ".join(dict.fromkeys(_kind(s) for s in r["sources"]))
     or ("-" if r["hash"] == "-" else "by hand")),
    ("sha256", lambda r: r["hash"]),
]


def plain_table(rows: list[dict]) -> str:
    """Every column, space-aligned, nothing cut: the form for pipes and files (``upvid models | grep``)."""
    cells = [[head for head, _ in _COLUMNS]] + [[get(r) for _, get in _COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n" for row in cells)


def render_table(rows: list[dict], console: Console) -> None:
    """A Rich table fitted to ``console.width``: the name column is never cut; trailing columns
    that do not fit are left out (and named in a caption), others wrap."""
    from rich.table import Table

    natural = [max([len(head), *(len(line) for r in rows for line in get(r).split(", "))]) for head, get in _COLUMNS]
    keep, used = 0, 4  # the table's outer edges
    for i, w in enumerate(natural):
        need = min(w, 16) + 3 if i else w + 3  # later columns may wrap to 16 characters
        if i and used + need > console.width:
            break
        keep, used = i + 1, used + need
    left_out = [head for head, _ in _COLUMNS[keep:]]
    table = Table(title="upvid models", caption=f"not shown at this width: {', '.join(left_out)} (--json has all)"
                  if left_out else None)
    for i, (head, _) in enumerate(_COLUMNS[:keep]):
        if i == 0:
            table.add_column(head, no_wrap=True, min_width=natural[0])
        else:
            table.add_column(head, overflow="fold")
    for r in rows:
        table.add_row(*(get(r) for _, get in _COLUMNS[:keep]))
    console.print(table)


def _kind_of(rec) -> str:
    """The README's words for a model's temporal family: per-frame, sliding window (N), recurrent (clip N)."""
    if rec.family == "recurrent":
        return f"recurrent (clip {rec.frames})"
    return "per-frame" if rec.frames == 1 else f"sliding window ({rec.frames})"


def _kind(label: str) -> str:
    """A source label shortened for the table: Drive, Drive folder, Hub, or the URL's host."""
    if label.startswith("Google Drive folder"):
        return "Drive folder"
    if label.startswith("Google Drive"):
        return "Drive"
    if label.startswith("Hugging Face Hub"):
        return "Hub"
    return label.split("/")[2] if "://" in label else label


def _names(names: list[str] | None, all_: bool) -> list[str]:
    from upvid.errors import UsageError
    from upvid.models import list_models

    if all_ and names:
        raise UsageError("give model names or --all, not both")
    if all_ or not names:
        if not all_:
            raise UsageError("give model names, or --all")
        return [n for n, r in list_models().items() if r.weights]
    return names


@models_app.command("fetch")
def models_fetch(
    names: Annotated[Optional[list[str]], typer.Argument(help="Model names.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every model that has weights.")] = False,
    weights_dir: Annotated[Optional[Path], typer.Option(envvar="UPVID_WEIGHTS_DIR", help="Local weights folder.")] = None,
) -> None:
    """Download, verify (sha256) and convert the weights of NAMES (or --all)."""
    check_weights_dir(weights_dir)
    from upvid.models import get_record
    from upvid.models.weights import fetch

    for name in _names(names, all_):
        rec = get_record(name)
        if not rec.weights:
            err.print(f"upvid: {name}: no weights needed")
            continue
        path = fetch(rec, weights_dir)
        err.print(f"upvid: {name}: ready ({path})")
        if rec.denoise_with:  # --denoise mixes in the twin's weights: fetch them too
            path = fetch(get_record(rec.denoise_with), weights_dir)
            err.print(f"upvid: {rec.denoise_with} (--denoise twin of {name}): ready ({path})")


@models_app.command("verify")
def models_verify(
    names: Annotated[Optional[list[str]], typer.Argument(help="Model names (default: every model).")] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(envvar="UPVID_WEIGHTS_DIR", help="Local weights folder.")] = None,
) -> None:
    """Re-hash the cached checkpoints; a file that fails its sha256 is deleted and fetched again."""
    check_weights_dir(weights_dir)
    from upvid.models import get_record
    from upvid.models.weights import verify_cached

    for name in names or _names(None, True):
        state = verify_cached(get_record(name), weights_dir)
        err.print(f"upvid: {name}: {state}")
