"""Every model in ``weights.toml`` runs end to end through the ``upvid`` command on a real clip.

The clip is real content (Vid4 calendar, x4 MATLAB-bicubic down, cropped small so the big
networks stay cheap on CPU) with an AAC track. Networks are randomly initialised
(``--random-weights``): the checkpoints cannot be downloaded here; their loading is covered by
the parity and real-checkpoint tests. What is checked is the pipeline: the output video has
``scale`` times the size, every input frame once, the same timestamps and the audio.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.data import VID4, need
from tests.cli import call
from tests.media import describe
from upvid.models import get_record, list_models

N_FRAMES = 5
LR_H, LR_W = 32, 40


pytestmark = pytest.mark.slow  # one run per network: the longest part of the suite


#: Architectures too slow on CPU to run every configuration end to end (VRT: 31-35M parameters,
#: about 9 s per 3-frame 64x64 clip): one record each; their other configurations (VRT's
#: parallel warping over 4 and 6 frames) are covered by the parity fixtures.
ONE_RECORD = {"upvid.models.vrt:VRT"}


def make_tiny_clip(path, frames: int = N_FRAMES, size: tuple[int, int] = (LR_H, LR_W)):
    """``frames`` LR frames (``size`` (h, w), a crop of Vid4 calendar, x4 MATLAB-bicubic down) + AAC, at ``path``."""
    import torch

    from upvid.bench.degrade import bi_degrade
    from upvid.io.images import encode_clip, read_image_folder

    hr = []
    for i, f in enumerate(read_image_folder(need(VID4 / "calendar"))):
        if i == frames:
            break
        h, w = size
        hr.append(torch.from_numpy(np.ascontiguousarray(f[200:200 + 4 * h, 240:240 + 4 * w])).permute(2, 0, 1))
    lr = bi_degrade(torch.stack(hr), 4)  # (T, 3, h, w) uint8
    clip = [x.permute(1, 2, 0).contiguous().numpy() for x in lr]
    encode_clip(clip, path, fps=25)
    return path


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("zoo") / "calendar_tiny.mp4")


@pytest.fixture(scope="module")
def clip_64(tmp_path_factory):
    """For networks with a 64-px minimum (VRT: a full window at 1/8 scale)."""
    return make_tiny_clip(tmp_path_factory.mktemp("zoo64") / "calendar_64.mp4", size=(64, 64))


def _network_key(rec) -> str:
    """What random weights exercise: the architecture and how the pipeline feeds it. Records
    that differ only in their checkpoint (iart / iart-vimeo / iart-vimeo-bd...) share a key."""
    import json

    if rec.arch in ONE_RECORD:
        return rec.arch
    return json.dumps([rec.arch, rec.kwargs, rec.family, rec.scale, rec.scales, rec.frames if rec.family != "recurrent" else 0,
                       rec.temporal_padding, rec.size_multiple, rec.channels, rec.input_range, rec.input_mean, rec.clip_blend],
                      sort_keys=True, default=str)


def _names() -> list[str]:
    """One model per distinct network (the first record of each), so the same network with other
    weights is not run twice (their checkpoints' loading is covered by the parity tests)."""
    seen: dict[str, str] = {}
    for name, rec in list_models().items():
        seen.setdefault(_network_key(rec), name)
    return list(seen.values())


@pytest.mark.parametrize("name", _names())
def test_model_runs_end_to_end(name, tiny_clip, clip_64, tmp_path):
    rec = get_record(name)
    clip, (lr_h, lr_w) = (clip_64, (64, 64)) if rec.min_size > LR_H else (tiny_clip, (LR_H, LR_W))
    out = tmp_path / f"{name}.mp4"
    # small clips so that a recurrent model sees several clips (overlap + cross-fade + reach-back)
    args = ["--chunk", "3", "--overlap", "1"] if rec.family == "recurrent" else ["--chunk", "2"]
    code, _, err = call(clip, out, "--model", name, "--random-weights", "--tile", "0", "--quiet", *args)
    assert code == 0, err
    src, dst = describe(clip), describe(out)
    s = rec.scale
    assert dst["size"] == (lr_w * s, lr_h * s)
    assert dst["frames"] == src["frames"] == N_FRAMES
    assert dst["pts_s"] == src["pts_s"]
    assert dst["audio"] == src["audio"] and dst["audio"]
    first = dst["first_rgb"][0]  # a decoded HR picture with content, not a constant frame
    assert first.shape == (lr_h * s, lr_w * s, 3) and first.dtype == np.uint8
    assert first.std() > 1.0, (name, first.std())
