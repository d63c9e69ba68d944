"""Benchmark data: GT sequence folders, frame streams from folders and videos, and the published scores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from upvid.errors import InputError

#: The "Bicubic" rows of the literature (x4, PSNR-Y dB / SSIM-Y), as tabulated in BasicVSR
#: (Chan et al., CVPR 2021) and the VSR surveys that copy it (Vid4 BI seen in two public copies,
#: Vimeo-90K-T BI in one). Vid4 BI is reproduced by ``matlab-bicubic`` to 0.01 dB.
PUBLISHED_BASELINES: dict[tuple[str, str], tuple[float, float]] = {
    ("vid4", "BI"): (23.78, 0.6347),
    ("vimeo90k-t", "BI"): (31.32, 0.8684),
}


def dataset_label(gt_dir: Path) -> str:
    name = gt_dir.name if gt_dir.name.lower() not in {"gt", "hr", "test"} else gt_dir.parent.name
    return name.lower()


def find_sequences(dataset_dir: str | os.PathLike) -> tuple[Path, list[Path]]:
    """Resolve the GT folder and its sequence folders (see the module docstring for the layout).

    Returns:
        ``(gt_dir, [sequence folders, sorted by name])``.

    Raises:
        InputError: the folder is missing or holds no images.
    """
    from upvid.io.images import IMAGE_SUFFIXES

    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    if (root / "GT").is_dir():
        root = root / "GT"

    def has_images(p: Path) -> bool:
        try:
            return any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())
        except OSError as e:
            raise InputError(f"{p}: cannot list ({e.strerror or e})") from e

    subs = sorted(p for p in root.iterdir() if p.is_dir() and has_images(p))
    if subs:
        return root, subs
    if has_images(root):
        return root, [root]
    raise InputError(f"{root}: no sequence folders of images")


def image_stream(folder: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """8-bit RGB frames of an image folder, all of one size."""
    from upvid.io.images import list_images, read_image

    shape = None
    for f in list_images(folder)[: max_frames or None]:
        img = read_image(f)
        if img.dtype != np.uint8:
            raise InputError(f"{f}: the benchmark expects 8-bit RGB frames")
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise InputError(f"{folder}: frames differ in size ({f.name} is {img.shape[1]}x{img.shape[0]})")
        yield img


def video_stream(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """8-bit RGB frames decoded from a video."""
    from upvid.io import probe, read_frames

    info = probe(path)
    n = 0
    for f in islice(read_frames(path, info, high_bit_depth=False), max_frames):
        n += 1
        yield f.rgb
    if n == 0:
        raise InputError(f"{path}: no decodable video frame")


def published_score(model_name: str, net: Any, dataset: str, degradation: str, scale: int, full: bool) -> dict | None:
    """The published number for this (model, dataset, degradation), if there is one and it applies."""
    if not full or scale != 4:
        return None
    if net is None or model_name == "bicubic":
        ref = PUBLISHED_BASELINES.get((dataset, degradation))
        if ref is None:
            return None
        return {"dataset": dataset, "degradation": degradation, "psnr": ref[0], "ssim": ref[1],
                "source": "Bicubic row, BasicVSR (CVPR 2021) Table 2 (MATLAB bicubic)"}
    rec = net.record
    if rec.degradation and rec.degradation.upper() != degradation:
        return None
    psnr = rec.psnr.get(dataset)
    if psnr is None:
        return None
    return {"dataset": dataset, "degradation": degradation, "psnr": psnr, "ssim": None,
            "source": f"weights.toml [models.{rec.name}].psnr ({rec.paper or rec.repo})"}
