"""OUT: what kind it is, whether it may be written, its size, and publishing a finished frame folder."""

from __future__ import annotations

import os
from pathlib import Path

from upvid.errors import OutputError, UsageError
from upvid.job.options import INPUT_VIDEO_SUFFIXES, NOT_VIDEO_SUFFIXES, JobOptions


def work_dir_for(out: Path) -> Path:
    """The hidden work folder of output ``out``."""
    return out.parent / f".{out.name}.upvid-partial"


def is_image_output(out: Path) -> bool:
    """OUT is an image folder when it has no video suffix (an existing folder named ``vid.mp4``
    is a video OUT, refused by :func:`check_output` as a directory)."""
    return out.suffix.lower() not in INPUT_VIDEO_SUFFIXES


def is_image_input(path: Path) -> bool:
    return path.is_dir()


def output_size(width: int, height: int, scale: int, opts: JobOptions) -> tuple[int, int]:
    """The output frame size: the model's ``scale`` x input, or what ``--outscale`` / ``--size`` /
    ``--height`` ask for (aspect kept for ``--outscale`` and ``--height``; even for 4:2:0).
    The options were checked by :class:`JobOptions`.
    """
    if opts.outscale is not None:
        w, h = width * opts.outscale, height * opts.outscale
    elif opts.size is not None:
        w, h = opts.size
    elif opts.height is not None:
        w, h = width * opts.height / height, opts.height
    else:
        return width * scale, height * scale
    w, h = max(2, int(round(w / 2)) * 2), max(2, int(round(h / 2)) * 2)
    return w, h


def check_output(inp: Path, out: Path, opts: JobOptions) -> bool:
    """Validate OUT before any work. Returns ``False`` when the job is to be skipped (``--skip-existing``).

    Raises:
        OutputError: OUT exists (no ``--overwrite``), is the wrong kind, or its folder is missing/unwritable.
        UsageError: OUT is IN.
    """
    if len(work_dir_for(out).name.encode()) > 255:
        raise OutputError(f"{out.name[:40]}...: the name is too long (at most 240 bytes: upvid's work folder "
                          f"beside it is named .<OUT>.upvid-partial)")
    if out.exists() or out.is_symlink():
        if inp.exists() and out.resolve() == inp.resolve():
            raise UsageError(f"{out}: output would overwrite the input")
        if opts.resume and not work_dir_for(out).exists() and not (out.is_dir() and not any(out.iterdir())):
            return False  # a resumed batch: this one was finished (no work folder left)
        if opts.skip_existing:
            if not (out.is_dir() and not any(out.iterdir())):
                return False
        if is_image_output(out):
            if not out.is_dir():
                raise OutputError(f"{out}: exists and is a file (an OUT without a video suffix is a folder of PNG frames)")
            if any(out.iterdir()) and not opts.overwrite:
                raise OutputError(f"{out}: folder is not empty (use --overwrite to replace its frames)")
        elif out.is_dir():
            raise OutputError(f"{out}: is a directory")
        elif not opts.overwrite:
            raise OutputError(f"{out}: exists (use --overwrite to replace it)")
    if not out.is_dir() and out.suffix.lower() in NOT_VIDEO_SUFFIXES:
        raise UsageError(f"{out}: {out.suffix} is not a video container suffix; use a video suffix (.mkv, .mp4, .mov, "
                         ".webm, .avi, .nut, .ts, .mpg, .ogv), or a name without a suffix for a folder of PNG frames")
    parent = out.parent
    if not parent.exists():
        raise OutputError(f"{parent}: no such directory")
    if not parent.is_dir():
        raise OutputError(f"{parent}: not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: permission denied (cannot write the output there)")
    return True


def publish_frames(frames: Path, out: Path, n: int) -> None:
    """Move the finished frames folder to ``out`` (renamed when possible; merged into an existing folder)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(frames, out)
        return
    for i in range(n):  # --overwrite into a non-empty folder: replace our frame names, drop stale ones
        name = f"{i:08d}.png"
        os.replace(frames / name, out / name)
    for f in out.iterdir():
        if f.suffix == ".png" and f.stem.isdigit() and len(f.stem) == 8 and int(f.stem) >= n:
            f.unlink()


def appeared(out: Path, work: Path) -> OutputError:
    """The error for an OUT that someone else created while the job ran (the work is kept)."""
    return OutputError(f"{out}: appeared while upvid was working and is not overwritten (no --overwrite); the "
                       f"finished work is kept in {work}: move {out.name} away and run the same command with "
                       "--resume (or add --overwrite)")


def publish_file(tmp: Path, out: Path, overwrite: bool, work: Path) -> None:
    """Give the finished temporary file OUT's name: atomically and never over a file that appeared
    meanwhile, unless ``overwrite`` (a hard link fails if OUT exists; where links are not
    possible, a check right before the rename).

    Raises:
        OutputError: OUT appeared while the job ran (the temporary file is removed, the work kept).
    """
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise appeared(out, work) from None
    except OSError:  # no hard links here (some network/FUSE mounts)
        if out.exists() or out.is_symlink():
            tmp.unlink(missing_ok=True)
            raise appeared(out, work) from None
        os.replace(tmp, out)
        return
    tmp.unlink()
