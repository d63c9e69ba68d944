"""The Typer application object and the stderr console shared by the command modules."""

from __future__ import annotations

import typer
from rich.console import Console

DEFAULT_MODEL = "basicvsrpp"
COMMANDS = {"upscale", "models", "bench", "degrade", "explain"}

# The three commands a newcomer needs first, shown by `upvid --help` and `upvid upscale --help`
# (the \b lines keep click from re-flowing them).
EXAMPLES = """\b
Examples (first steps):
  upvid in.mp4 out.mp4 --model rlfn-x4  x4, model shipped with upvid
  upvid models                          list models and their weights
  upvid models fetch basicvsrpp         download + verify a model's weights
"""

app = typer.Typer(
    epilog=EXAMPLES,
    add_completion=False,
    no_args_is_help=True,
    help="upvid: video super-resolution. `upvid IN OUT --model NAME --scale 4` upscales a video "
    "(the `upscale` word may be left out); `upvid models` lists models; `upvid bench` measures them.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

err = Console(stderr=True, highlight=False)
