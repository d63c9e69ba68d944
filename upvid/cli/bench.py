"""`upvid bench`: quality (PSNR/SSIM-Y) and speed of a model."""

from __future__ import annotations



from upvid.cli.app import app
from upvid.errors import UsageError


@app.command("bench")
def bench() -> None:
    """Measure speed and PSNR (not implemented yet: see the README)."""
    raise UsageError("`upvid bench` is not implemented yet")
