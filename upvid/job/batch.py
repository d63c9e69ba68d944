"""Batches: expand folders into jobs and name each job's OUT."""

from __future__ import annotations

import os
from pathlib import Path

from upvid.errors import InputError, UpvidError, UsageError
from upvid.io.codecs import VIDEO_SUFFIXES
from upvid.io.images import IMAGE_SUFFIXES
from upvid.job.options import INPUT_VIDEO_SUFFIXES


def _has_images(d: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())


def output_name(inp: Path, out_dir: Path, fmt: str | None, suffix: str = "") -> Path:
    """OUT for IN in a batch: ``out_dir/<stem><suffix>.<fmt>``; by default the input's suffix when
    upvid can write it (else ``.mkv``), and a folder for image-folder inputs."""
    stem = (inp.name if inp.is_dir() else inp.stem) + suffix
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt in ("png", "images", "frames", "dir", "folder"):
            return out_dir / stem
        return out_dir / f"{stem}.{fmt}"
    if inp.is_dir():
        return out_dir / stem
    ext = inp.suffix.lower()
    return out_dir / (stem + (ext if ext in VIDEO_SUFFIXES else ".mkv"))


def plan_batch(inputs: list[Path], out_dir: Path, fmt: str | None,
               suffix: str = "") -> list[tuple[Path, Path | None, UpvidError | None]]:
    """Expand folders and name outputs. A folder holding videos gives one job per video (sorted,
    not recursive); a folder holding only images is one image-sequence job. Inputs that would
    write the same output keep their folder structure under ``out_dir`` (relative to the folder
    they share), so ``a/x.mp4`` and ``b/x.mp4`` become ``OUT/a/x.mp4`` and ``OUT/b/x.mp4``.

    Returns:
        ``(input, output, error)`` triples; ``error`` is set for inputs that cannot be a job
        (the same input given twice, an input that is not there, an empty folder).
    """
    jobs: list[tuple[Path, Path | None, UpvidError | None]] = []
    for p in inputs:
        if p.is_dir():
            vids = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in INPUT_VIDEO_SUFFIXES
                          and not f.name.startswith("."))
            if vids:
                jobs += [(f, output_name(f, out_dir, fmt, suffix), None) for f in vids]
            elif _has_images(p):
                jobs.append((p, output_name(p, out_dir, fmt, suffix), None))
            else:
                jobs.append((p, None, InputError(f"{p}: no video or image files in this folder")))
        elif not p.exists():
            jobs.append((p, None, InputError(f"{p}: no such file")))
        else:
            jobs.append((p, output_name(p, out_dir, fmt, suffix), None))
    by_out: dict[Path, list[int]] = {}
    for k, (_, out, _) in enumerate(jobs):
        if out is not None:
            by_out.setdefault(out.resolve(), []).append(k)
    for ks in by_out.values():
        if len(ks) < 2:
            continue
        srcs = [jobs[k][0].resolve() for k in ks]
        if len(set(srcs)) < len(srcs):  # the very same input twice: the later ones are refused
            seen: set[Path] = set()
            for k, src in zip(ks, srcs):
                if src in seen:
                    jobs[k] = (jobs[k][0], None, UsageError(f"{jobs[k][0]}: given twice in the batch"))
                seen.add(src)
            ks = [k for k in ks if jobs[k][1] is not None]
            srcs = [jobs[k][0].resolve() for k in ks]
            if len(ks) < 2:
                continue
        common = Path(os.path.commonpath([s.parent for s in srcs]))
        same_folder = len({s.parent for s in srcs}) < len(srcs)  # x.mp4 and x.mkv side by side
        for k, src in zip(ks, srcs):
            inp, out, err = jobs[k]
            name = f"{out.stem}-{inp.suffix.lstrip('.').lower()}{out.suffix}" if same_folder and inp.is_file() else out.name
            jobs[k] = (inp, out_dir / src.parent.relative_to(common) / name, err)
    return jobs
