"""Every ``weights.toml`` record keeps the registry contract (upvid.models.registry), one case per model."""

from __future__ import annotations

import pytest

from upvid.engine.temporal import CLIP_BLENDS, PADDINGS
from upvid.models.registry import build_network, import_object, list_models
from upvid.models.weights import embedded_path, file_specs

FAMILIES = {"recurrent", "sliding-window"}


@pytest.mark.parametrize("name", list(list_models()))
def test_record_keeps_the_contract(name):
    rec = list_models()[name]
    assert rec.family in FAMILIES
    assert rec.scale >= 1 and rec.supports_scale(rec.scale)
    assert rec.temporal_padding in PADDINGS and rec.clip_blend in CLIP_BLENDS
    assert rec.channels in ("rgb", "y") and rec.input_range in (1.0, 255.0)
    assert 0 <= rec.input_mean < 1
    assert rec.size_multiple >= 1 and rec.min_size >= 0 and rec.tile >= 0 and 0 <= rec.tile_overlap
    if rec.family == "recurrent":
        assert rec.frames >= 2 and 0 <= rec.overlap < rec.frames  # a clip and the frames clips share
    else:
        assert rec.frames % 2 == 1 and rec.overlap == 0  # a centred window of 2N+1 frames
    if rec.convert:
        assert callable(import_object(rec.convert))
    if rec.weights:
        specs = file_specs(rec)
        # a pinned digest, or a record that says why there is none (a Drive folder without one)
        assert specs and all(s.get("sha256") or s.get("sha256_prefix") or "published hash" in s.get("source", "")
                             for s in specs), specs
        assert rec.license, "a model with a checkpoint names its licence"
        assert rec.paper or rec.repo, "and where it comes from"
    if rec.embedded:
        assert embedded_path(rec).is_file()
    if rec.denoise_with:
        twin = list_models()[rec.denoise_with]
        assert twin.arch == rec.arch and twin.kwargs == rec.kwargs and 0 <= rec.denoise_default <= 1
    net = build_network(rec)  # the arch is importable and builds from its kwargs
    if rec.params is not None:
        assert sum(p.numel() for p in net.parameters()) == rec.params
