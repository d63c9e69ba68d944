"""The Typer application object and the stderr console shared by the command modules."""

from __future__ import annotations

import typer
from rich.console import Console

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

err = Console(stderr=True, highlight=False)
