"""Engine: tiles, chunks, clips and temporal padding give the same result as whole-frame, whole-sequence runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from upvid.engine import Engine, EngineConfig, upscale_frames
from upvid.engine.temporal import crossfade_weights, reflect_index, window_indices
from upvid.engine.tiles import run_tiled, tile_starts
from upvid.errors import OutOfMemoryError, UsageError
from upvid.models.registry import ModelRecord
from upvid.models.load import load_model
from upvid.models.upscaler import Upscaler


def _frames(n: int, h: int = 36, w: int = 52, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_tile_starts_cover_and_overlap():
    for length in range(20, 300, 7):
        for tile, ov in [(16, 4), (64, 16), (48, 20)]:
            starts = tile_starts(length, tile, ov)
            size = min(tile, length)
            assert starts[0] == 0 and starts[-1] + size == length
            for a, b in zip(starts, starts[1:]):
                assert a + size - b >= min(ov, size)  # neighbours overlap by at least `ov`
    with pytest.raises(ValueError):
        tile_starts(100, 16, 16)


def test_tiled_equals_untiled_bicubic():
    """Bicubic has a 2-px receptive field: with a >= 2 px zero-weight margin, tiles are exact."""
    model = load_model("bicubic", 3)
    x = torch.rand(1, 1, 3, 61, 83)
    whole = model(x)
    for tile, ov in [(16, 8), (24, 12), (40, 16)]:
        tiled = run_tiled(model, x, 3, tile, ov, tile_batch=3)
        assert (tiled - whole).abs().max().item() < 1e-4, (tile, ov)


class _ConvNet(nn.Module):
    """A deterministic receptive-field-5 network: 2 convs then bicubic x2 (per frame)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x + 0.1 * self.c2(torch.relu(self.c1(x))), scale_factor=2, mode="bicubic")


def test_tiled_equals_untiled_conv_model_with_enough_margin():
    rec = ModelRecord(name="conv", arch="-", family="sliding-window", scale=2, frames=1)
    model = Upscaler(_ConvNet(), rec)
    x = torch.rand(2, 1, 3, 50, 70)
    whole = model(x)
    tiled = run_tiled(model, x, 2, 24, 16, margin=4)
    assert (tiled - whole).abs().max().item() < 1e-4
    # a margin smaller than the receptive field is visibly wrong: the test can fail
    bad = run_tiled(model, x, 2, 24, 16, margin=0)
    assert (bad - whole).abs().max().item() > 1e-3


class _WindowMean(nn.Module):
    """Sliding window of N frames -> weighted temporal mean, x2 nearest. Order-sensitive weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1, 1, 1)
        y = (x * w).sum(1) / w.sum()
        return nn.functional.interpolate(y, scale_factor=2, mode="nearest")


def _sliding(frames: int = 5) -> Upscaler:
    return Upscaler(_WindowMean(), ModelRecord(name="win", arch="-", family="sliding-window", scale=2, frames=frames))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 11])
def test_sliding_window_chunked_equals_whole_and_reflects(n):
    frames = _frames(n)
    model = _sliding(5)
    whole = list(upscale_frames(model, frames, chunk=n + 5))
    chunked = list(upscale_frames(model, frames, chunk=2))
    assert len(whole) == len(chunked) == n
    for a, b in zip(whole, chunked):
        assert np.abs(a.astype(int) - b).max() == 0
    # independent expectation: frame i is the weighted mean over reflect-padded neighbours
    t = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    for i in range(n):
        idx = [reflect_index(j, n) for j in range(i - 2, i + 3)]
        exp = model(t[idx][None])[0, 0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        assert np.array_equal(exp, whole[i]), i


def test_reflect_index():
    assert [reflect_index(j, 5) for j in range(-3, 8)] == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    assert reflect_index(-2, 1) == 0 and reflect_index(3, 2) == 1
    assert window_indices(0, 5, None, 1) is None  # needs frame 2 which is not decoded yet
    assert window_indices(0, 5, None, 2) == [2, 1, 0, 1, 2]


class _ClipMean(nn.Module):
    """Recurrent stand-in whose output depends on the whole clip (clip mean + frame)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x.flatten(0, 1), scale_factor=2, mode="nearest").unflatten(0, x.shape[:2])
        return 0.5 * up + 0.5 * x.mean(dim=1, keepdim=True).repeat_interleave(2, -1).repeat_interleave(2, -2)


class _PerFrame(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x.flatten(0, 1), scale_factor=2, mode="bicubic").unflatten(0, x.shape[:2])


def _recurrent(net: nn.Module, frames: int = 6, overlap: int = 2) -> Upscaler:
    return Upscaler(net, ModelRecord(name="rec", arch="-", family="recurrent", scale=2, frames=frames, overlap=overlap))


@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 10, 13, 25])
@pytest.mark.parametrize("clip,overlap", [(6, 2), (4, 0), (5, 4), (3, 1)])
def test_recurrent_clips_one_output_per_frame_in_order(n, clip, overlap):
    frames = _frames(n, 12, 16, seed=n)
    per_frame = _recurrent(_PerFrame())
    out = list(upscale_frames(per_frame, frames, chunk=clip, overlap=overlap))
    whole = list(upscale_frames(per_frame, frames, chunk=10**6, overlap=0))
    assert len(out) == n
    for a, b in zip(out, whole):  # a frame-local model must be unaffected by clipping and cross-fades
        assert np.abs(a.astype(int) - b).max() <= 1


def test_recurrent_crossfade_blends_both_clips():
    frames = _frames(10, 8, 8)
    model = _recurrent(_ClipMean(), 6, 2)
    out = list(Engine(model, EngineConfig(chunk=6, overlap=2)).run(frames))
    t = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    a = model(t[0:6][None])[0]
    b = model(t[4:10][None])[0]  # last clip reaches back to a full 6 frames
    w = crossfade_weights(2)
    exp4 = (a[4] * w[0] + b[0] * (1 - w[0])).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    exp2 = a[2].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    exp9 = b[5].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(out[4].astype(int) - exp4).max() <= 1
    assert np.array_equal(out[2], exp2) and np.array_equal(out[9], exp9)


def test_config_validation():
    model = _recurrent(_PerFrame())
    with pytest.raises(UsageError):
        EngineConfig.for_model(model, chunk=4, overlap=4)
    with pytest.raises(UsageError):
        EngineConfig.for_model(model, tile=16, tile_overlap=16)
    cfg = EngineConfig.for_model(model)
    assert (cfg.chunk, cfg.overlap) == (6, 2)


class _OomAbove(nn.Module):
    """Raises an out-of-memory RuntimeError when a tile is larger than ``limit`` px."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[-1])
        if x.shape[-1] * x.shape[-2] > self.limit**2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return nn.functional.interpolate(x.flatten(0, 1), scale_factor=2, mode="bicubic").unflatten(0, x.shape[:2])


def test_oom_backs_off_to_smaller_tiles_without_losing_frames():
    net = _OomAbove(70)
    model = _recurrent(net, 4, 1)
    frames = _frames(7, 128, 128)
    eng = Engine(model, EngineConfig(chunk=4, overlap=1, tile=0, tile_overlap=16))
    out = list(eng.run(frames))
    assert len(out) == 7 and eng.times.oom_retries >= 1 and eng.layout.tile <= 70
    ref = list(upscale_frames(_recurrent(_PerFrame(), 4, 1), frames))
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(out, ref)) <= 1
    with pytest.raises(OutOfMemoryError):
        list(Engine(_recurrent(_OomAbove(8), 4, 1), EngineConfig(chunk=4, overlap=1)).run(frames))


def test_a_stitch_buffer_that_cannot_fit_is_exit_7_at_once(monkeypatch):
    """When the whole-clip HR buffer the tiles are stitched into cannot be allocated, smaller tiles
    cannot help: OutOfMemoryError at once, no back-off rounds, and no "--device cpu" on the CPU."""
    model = _recurrent(_PerFrame(), 4, 1)
    frames = _frames(4, 64, 64)
    eng = Engine(model, EngineConfig(chunk=4, overlap=1, tile=32, tile_overlap=8))
    real_zeros = torch.zeros

    def zeros(*shape, **kw):
        dims = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if int(np.prod(dims)) >= 4 * 3 * 128 * 128:  # the (B, T, C, sH, sW) buffer of a 4-frame clip
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: can't allocate memory")
        return real_zeros(*shape, **kw)

    monkeypatch.setattr(torch, "zeros", zeros)
    with pytest.raises(OutOfMemoryError, match="smaller tiles cannot help") as e:
        list(eng.run(frames))
    assert eng.times.oom_retries == 0 and "--device cpu" not in str(e.value)
    monkeypatch.setattr(torch, "zeros", real_zeros)
    with pytest.raises(OutOfMemoryError) as e:  # the model itself out of memory on the CPU: back-off, then no --device cpu
        list(Engine(_recurrent(_OomAbove(8), 4, 1), EngineConfig(chunk=4, overlap=1)).run(frames))
    assert "--device cpu" not in str(e.value)


def test_uint16_frames_round_trip():
    model = load_model("bicubic", 2)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16) for _ in range(2)]
    out = list(upscale_frames(model, frames))
    assert out[0].dtype == np.uint16 and out[0].shape == (20, 24, 3)
    # the values: 16-bit in, bicubic x2 in float, rounded back to 16 bits (not 8-bit steps)
    for f, o in zip(frames, out):
        x = torch.from_numpy(f.astype(np.float32) / 65535).permute(2, 0, 1)[None]
        ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        ref = ref.clamp(0, 1).mul(65535).round()[0].permute(1, 2, 0).numpy()
        assert np.abs(o.astype(np.float64) - ref).max() <= 1
        assert len(np.unique(o % 257)) > 16  # far more levels than an 8-bit round trip would leave


def test_planner_tile_for_budget():
    from upvid.engine.planner import plan, tile_for_budget

    # 1 GB budget, 1000 B/px/frame, 10 frames: 100k px -> 316 px, rounded down to 312
    assert tile_for_budget(1e9, 1000, 10, 1080, 1920) == 312
    assert tile_for_budget(1e12, 1000, 10, 1080, 1920) == 0  # whole frame fits
    assert tile_for_budget(1.0, 1000, 10, 1080, 1920) == 8  # never below the multiple
    model = load_model("bicubic", 2)
    p = plan(model, torch.device("cpu"), torch.float32, 1, 100, 100, default_tile=64, default_chunk=8)
    assert (p.tile, p.chunk) == (64, 8)  # CPU keeps the defaults; the OOM back-off covers the rest


def test_padding_modes_match_basicsr_generate_frame_indices():
    from upvid.engine.temporal import pad_index

    def win(c, n, mode, r=2):
        return [pad_index(j, c, r, n, mode) for j in range(c - r, c + r + 1)]

    assert win(0, 10, "reflection_circle") == [4, 3, 0, 1, 2]
    assert win(9, 10, "reflection_circle") == [7, 8, 9, 6, 5]
    assert win(0, 10, "reflect") == [2, 1, 0, 1, 2]
    assert win(9, 10, "replicate") == [7, 8, 9, 9, 9]
    assert all(0 <= j < 2 for j in win(0, 2, "reflection_circle"))  # short sequences stay in range


def test_reflection_circle_streams_like_whole():
    frames = _frames(9)
    rec = ModelRecord(name="w", arch="-", family="sliding-window", scale=2, frames=5, temporal_padding="reflection_circle")
    model = Upscaler(_WindowMean(), rec)
    out = list(upscale_frames(model, frames, chunk=1))
    t = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    exp = model(t[[6, 7, 8, 5, 4]][None])[0, 0]
    assert np.array_equal(out[8], exp.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())


def _two_clip_run(clip_blend: str):
    """10 frames through a 6-frame clip model with overlap 2: the engine's outputs, both clips'
    raw outputs (frames 0-5 and 4-9), and the uint8 quantiser the engine applies."""
    frames = _frames(10, 8, 8)
    rec = ModelRecord(name="rec", arch="-", family="recurrent", scale=2, frames=6, overlap=2, clip_blend=clip_blend)
    model = Upscaler(_ClipMean(), rec)
    out = list(upscale_frames(model, frames))
    t = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    a, b = model(t[0:6][None])[0], model(t[4:10][None])[0]

    def q(x):
        return x.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()

    return out, a, b, q


def test_split_clip_blend_takes_each_frame_from_one_clip():
    out, a, b, q = _two_clip_run("split")
    assert np.array_equal(out[4], q(a[4])) and np.array_equal(out[5], q(b[1]))


def test_attention_head_padding_is_exact():
    """Padding the head dim to a multiple of 8 (for the fused CUDA kernels) changes nothing."""
    from upvid.models.blocks import attention

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 6, 49, 20), torch.randn(3, 6, 49, 20), torch.randn(3, 6, 49, 20)
    bias = torch.randn(1, 6, 49, 49)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=20 ** -0.5)
    got = attention(q, k, v, attn_mask=bias, scale=20 ** -0.5, head_multiple=8)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-5
    assert torch.equal(attention(q, k, v, attn_mask=bias, scale=20 ** -0.5), ref)  # CPU: no padding


def test_average_clip_blend_is_the_mean_of_both_clips():
    """RVRT's official protocol: overlapping clip outputs are averaged."""
    out, a, b, q = _two_clip_run("average")
    exp = q((a[4] + b[0]) / 2)
    assert np.abs(out[4].astype(int) - exp).max() <= 1 and crossfade_weights(3, "average") == [0.5] * 3
    with pytest.raises(ValueError, match="clip_blend"):
        crossfade_weights(2, "nope")


def test_every_registry_record_uses_known_modes():
    """weights.toml typos (family, padding, clip blend, channels) fail here, not mid-video."""
    from upvid.engine.temporal import CLIP_BLENDS, PADDINGS
    from upvid.models import list_models

    for name, rec in list_models().items():
        assert rec.family in ("sliding-window", "recurrent"), name
        assert rec.temporal_padding in PADDINGS, name
        assert rec.clip_blend in CLIP_BLENDS, name
        assert rec.channels in ("rgb", "y"), name
        assert rec.frames >= 1 and (rec.family == "recurrent" or rec.frames % 2 == 1), name
        assert rec.family == "sliding-window" or 0 <= rec.overlap < rec.frames, name


#: Official test-config padding names -> upvid's (BasicSR's names; EGVSR's dual-reflect mirrors
#: without repeating the edge frame, as BasicSR's "reflection" does).
OFFICIAL_PADDING = {"reflection_circle": "reflection_circle", "reflection": "reflect", "replicate": "replicate",
                    "dual-reflect": "reflect"}


def test_sliding_window_padding_matches_the_official_test_config():
    """Every multi-frame sliding-window record names its official test config and padding value
    (``padding_source = "FILE: KEY: VALUE"``), and its ``temporal_padding`` is that value."""
    from upvid.models import list_models

    checked = []
    for name, rec in list_models().items():
        if rec.family != "sliding-window" or rec.frames == 1:
            continue
        assert rec.padding_source.count(":") >= 2, f"{name}: padding_source must be 'FILE: KEY: VALUE'"
        official = rec.padding_source.rsplit(":", 1)[1].strip()
        assert OFFICIAL_PADDING[official] == rec.temporal_padding, name
        checked.append(name)
    assert {"edvr-m", "edvr-l", "vespcn-x4-bd", "tdan", "tdan-bd"} <= set(checked)


@pytest.mark.parametrize("name", ["basicvsr", "basicvsrpp", "iconvsr", "iart", "psrt-recurrent", "rvrt"])
@pytest.mark.parametrize("chunk", [2, 4, 8])
def test_chunk_alone_scales_the_default_overlap(name, chunk):
    """``--chunk N`` without ``--overlap`` works for every recurrent model for N >= 2."""
    from upvid.engine.upscale import default_overlap
    from upvid.models import get_record

    rec = get_record(name)
    model = type("M", (), {"record": rec})()
    cfg = EngineConfig.for_model(model, chunk=chunk)
    assert cfg.chunk == chunk and 0 <= cfg.overlap < chunk
    assert cfg.overlap == default_overlap(rec.overlap, rec.frames, chunk)
    assert EngineConfig.for_model(model).overlap == rec.overlap  # no --chunk: the record's own
    with pytest.raises(UsageError, match="--overlap"):
        EngineConfig.for_model(model, chunk=chunk, overlap=chunk)  # an explicit bad value is still refused


def test_default_overlap_is_proportional():
    from upvid.engine.upscale import default_overlap

    assert default_overlap(10, 100, 8) == 1 and default_overlap(5, 30, 4) == 1 and default_overlap(5, 30, 2) == 0
    assert default_overlap(10, 100, 50) == 5 and default_overlap(2, 100, 100) == 2


def test_channels_last_on_cpu_keeps_the_output():
    """Records with ``channels_last = true`` run their convs in that memory format on CPU (faster,
    issue 25); the output stays within one 8-bit level of the contiguous run."""
    from upvid.models import get_record

    torch.manual_seed(0)
    assert get_record("rlfn-x4").channels_last and not get_record("basicvsr").channels_last
    model = load_model("rlfn-x4", pretrained=False)
    frames = [np.random.default_rng(i).integers(0, 256, (20, 24, 3), dtype=np.uint8) for i in range(3)]
    plain = [model(torch.from_numpy(f).permute(2, 0, 1)[None, None].float() / 255)[0, 0] for f in frames]
    engine = Engine(model, EngineConfig.for_model(model, tile=0))
    conv = next(m for m in model.net.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    got = list(engine.run(frames))
    for g, p in zip(got, plain):
        want = (p.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        assert np.abs(g.astype(int) - want.astype(int)).max() <= 1
