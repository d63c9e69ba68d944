"""Stream frames through a model: chunks/clips in time, tiles in space, stitched back in order.

Memory is bounded by the clip (recurrent) or window batch (sliding window) and the tile, never
by the video's length: frames enter as an iterator and leave as a generator, one output per
input, in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from upvid.engine.colour import rgb_to_yuv420, yuv420_to_rgb
from upvid.engine.device import autocast
from upvid.engine.shots import CutFinder, split_shots
from upvid.engine.temporal import clip_end, crossfade_weights, window_indices
from upvid.engine.tiles import run_tiled
from upvid.errors import OutOfMemoryError, UsageError
from upvid.frames import Yuv420
from upvid.models.upscaler import Upscaler

MIN_TILE = 32


@dataclass(frozen=True)
class EngineConfig:
    """How frames are cut for the model: the settings, fixed for the engine's life. What the CUDA
    planner and the out-of-memory back-off change while it runs is the engine's :class:`Layout`.

    Attributes:
        chunk: recurrent: clip length in frames; sliding window: windows (output frames) per model call.
        overlap: recurrent: frames shared by consecutive clips (cross-faded); ignored for sliding window.
        tile: spatial tile in LR px (0: whole frame).
        tile_overlap: overlap between tiles in LR px.
        tile_batch: tiles per model call.
        device: torch device.
        dtype: compute precision (autocast when not fp32).
        auto_tile, auto_chunk: let the planner size tiles / window batches (CUDA).
        compile: ``torch.compile`` the network (worth it for long videos on CUDA).
        yuv_out: ``(colorspace, full_range, bits)``: emit :class:`~upvid.frames.Yuv420` planes
            (8 or 10 bits) in that matrix/range, converted on the device without clipping
            out-of-gamut values (the encoder then takes them as they are). ``None``: RGB arrays.
        out_size: ``(width, height)`` to resize the model's output to (``--outscale``, ``--size``,
            ``--height``), bicubic with antialiasing on the device before rounding; ``None``: the
            model's own ``scale`` x input size.
        backend: ``"torch"``, or ``"openvino"`` (CPU; :mod:`upvid.engine.openvino`).
        precision: the OpenVINO inference precision (``"f32"``, ``"bf16"``, ``"f16"``).
    """

    chunk: int
    overlap: int = 0
    tile: int = 0
    tile_overlap: int = 16
    tile_batch: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    auto_tile: bool = False
    auto_chunk: bool = False
    compile: bool = False
    yuv_out: tuple[int, bool, int] | None = None
    out_size: tuple[int, int] | None = None
    backend: str = "torch"
    precision: str = ""

    @classmethod
    def for_model(
        cls,
        model: Upscaler,
        *,
        chunk: int | None = None,
        overlap: int | None = None,
        tile: int | None = None,
        tile_overlap: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> EngineConfig:
        """Defaults from the model's record (clip length/overlap, tile), overridden by arguments.

        Raises:
            UsageError: inconsistent values (overlap >= chunk, negative sizes).
        """
        rec = model.record
        auto_tile = tile is None
        auto_chunk = chunk is None and rec.family == "sliding-window"
        if rec.family == "recurrent":
            if overlap is None:  # the record's overlap, in proportion when only --chunk is given
                overlap = rec.overlap if chunk is None else default_overlap(rec.overlap, rec.frames, chunk)
            chunk = rec.frames if chunk is None else chunk
        else:
            # Windows per model call: one on CPU, where larger batches fall out of cache (rlfn-x4 and
            # realesr-animevideov3 at 180x144: 1.6x the fps of 8, benchmarks/throughput.py --chunk);
            # 8 on CUDA, where the planner then sizes the batch to the free memory.
            if chunk is None:
                chunk = 8 if torch.device(device).type == "cuda" else 1
            overlap = 0
        tile = rec.tile if tile is None else tile
        tile_overlap = rec.tile_overlap if tile_overlap is None else tile_overlap
        if chunk < 1:
            raise UsageError(f"--chunk must be >= 1, got {chunk}")
        if overlap < 0 or (rec.family == "recurrent" and overlap >= chunk):
            raise UsageError(f"--overlap must be in [0, chunk) = [0, {chunk}), got {overlap}")
        if tile < 0 or tile_overlap < 0:
            raise UsageError("--tile and --tile-overlap must be >= 0")
        if tile and tile_overlap >= tile:
            raise UsageError(f"--tile-overlap ({tile_overlap}) must be smaller than --tile ({tile})")
        return cls(chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap,
                   device=torch.device(device), dtype=dtype, auto_tile=auto_tile, auto_chunk=auto_chunk,
                   compile=compile)


@dataclass
class Layout:
    """The cut an :class:`Engine` uses now: starts as its config's, then sized by the CUDA planner
    at the first frame and shrunk by the out-of-memory back-off.

    Attributes:
        chunk: recurrent: clip length; sliding window: windows per model call.
        tile, tile_overlap: spatial tile and its overlap in LR px (tile 0: whole frame).
        tile_batch: tiles per model call.
    """

    chunk: int
    tile: int
    tile_overlap: int
    tile_batch: int

    @classmethod
    def of(cls, cfg: EngineConfig) -> Layout:
        return cls(cfg.chunk, cfg.tile, cfg.tile_overlap, cfg.tile_batch)


def queue_size(cfg: EngineConfig) -> int:
    """Frames each pipeline queue holds (decoded inputs, finished outputs): two clips, at least 4."""
    return max(4, 2 * cfg.chunk)


def default_overlap(record_overlap: int, record_clip: int, clip: int) -> int:
    """The overlap for a clip of ``clip`` frames when only the clip length is given: the record's
    ``record_overlap`` for ``record_clip`` frames, scaled in proportion and rounded, less than ``clip``
    (IART 100/10: ``--chunk 8`` -> 1; BasicVSR 30/5: ``--chunk 4`` -> 1, ``--chunk 2`` -> 0)."""
    if clip < 1:
        return 0
    return max(0, min(clip - 1, round(record_overlap * clip / max(1, record_clip))))


@dataclass
class StageTimes:
    """Seconds spent per stage (wall clock, summed) and frame counts, for benchmarks."""

    model_s: float = 0.0
    stitch_s: float = 0.0
    frames_out: int = 0
    oom_retries: int = 0


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    msg = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


class Engine:
    """Runs an :class:`Upscaler` over a frame stream with an :class:`EngineConfig`.

    Args:
        model: the wrapped network (already on ``config.device``).
        config: chunking and tiling.
    """

    def __init__(self, model: Upscaler, config: EngineConfig) -> None:
        self.model = model
        self.cfg = config
        self.layout = Layout.of(config)
        self.times = StageTimes()
        self._planned = False
        self._pinned: dict[tuple, list[Tensor]] = {}  # two reused pinned staging buffers per chunk shape
        self._copy_done: list = [None, None]  # CUDA events: the last upload from each buffer has finished
        self._flip = 0
        self._copy_stream = None
        if config.device.type == "cpu" and model.record.channels_last:
            # Same numerics (fp32 sums in another order, <= 1e-5), 1.3-1.6x faster on CPU (issue 25).
            model.net.to(memory_format=torch.channels_last)
        if config.backend == "openvino":
            from upvid.engine.openvino import OpenVinoModel

            self._forward_fn = OpenVinoModel(model, config.precision or "f32")
        else:
            self._forward_fn = torch.compile(model, dynamic=True) if config.compile else model

    def _plan(self, height: int, width: int) -> None:
        """Once, at the first frame: let the planner size tiles (and windows per batch) on CUDA."""
        self._planned = True
        if self.cfg.device.type != "cuda" or not (self.cfg.auto_tile or self.cfg.auto_chunk):
            return
        from upvid.engine.planner import plan

        lay = self.layout
        frames = lay.chunk if self.model.family == "recurrent" else self.model.record.frames
        p = plan(self.model, self.cfg.device, self.cfg.dtype, frames, height, width, lay.tile, lay.chunk)
        if self.cfg.auto_tile:
            lay.tile = p.tile
            if p.tile:
                lay.tile_overlap = min(lay.tile_overlap, p.tile // 4)
        if self.cfg.auto_chunk:
            lay.chunk = p.chunk

    # -- tensor helpers ------------------------------------------------------------------
    def _to_tensor(self, frames: list[np.ndarray] | list[Yuv420]) -> Tensor:
        """``T x (H, W, 3)`` uint8/uint16 RGB, or ``T x`` :class:`Yuv420` -> ``(T, 3, H, W)`` float32 in [0, 1] on the device."""
        if not self._planned:
            self._plan(*frames[0].shape[:2])
        if isinstance(frames[0], Yuv420):  # 4:2:0 planes: up to the device, colour conversion there
            planes = [f.planes for f in frames]
            f0 = frames[0]
            deep = f0.bits > 8
            if self.cfg.device.type == "cuda":
                t = self._upload(planes, deep)
            else:
                arr = np.stack(planes)
                t = torch.from_numpy(arr.astype(np.int32) if deep else arr)
            return yuv420_to_rgb(t, f0.colorspace, f0.full_range, f0.bits)
        deep = frames[0].dtype == np.uint16
        peak = 65535.0 if deep else 255.0
        if self.cfg.device.type == "cuda":
            t = self._upload(frames, deep)
        else:
            arr = np.stack(frames)
            t = torch.from_numpy(arr.astype(np.int32) if deep else arr)
        return t.permute(0, 3, 1, 2).float().div_(peak)

    def _upload(self, frames: list[np.ndarray], deep: bool) -> Tensor:
        """CUDA: arrays (RGB frames or 4:2:0 planes) -> pinned staging buffer (two, used in turn) -> device on a side copy stream.

        The compute stream waits for the copy (an event, not a host sync); the host only waits
        when it refills a buffer whose previous upload is still in flight.
        """
        dev = self.cfg.device
        key = (len(frames), *frames[0].shape, deep)
        bufs = self._pinned.get(key)
        if bufs is None:
            dt = torch.int32 if deep else torch.uint8
            bufs = [torch.empty(key[:-1], dtype=dt).pin_memory() for _ in range(2)]
            self._pinned = {key: bufs}
            self._copy_done = [None, None]
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(dev)
        i = self._flip = self._flip ^ 1
        if self._copy_done[i] is not None:
            self._copy_done[i].synchronize()
        buf = bufs[i]
        for k, f in enumerate(frames):
            buf[k].copy_(torch.from_numpy(f.astype(np.int32) if deep else f))
        compute = torch.cuda.current_stream(dev)
        with torch.cuda.stream(self._copy_stream):
            t = buf.to(dev, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._copy_stream)
        compute.wait_stream(self._copy_stream)
        t.record_stream(compute)  # the allocator must not reuse t's memory before compute is done with it
        self._copy_done[i] = done
        return t

    def _to_numpy(self, x: Tensor, dtype: np.dtype) -> list[np.ndarray] | list[Yuv420]:
        """``(T, 3, H, W)`` float [0, 1] -> ``T x (H, W, 3)`` of ``dtype``, rounded and clamped on the
        device; or ``T x`` :class:`Yuv420` when ``config.yuv_out`` is set.
        With ``config.out_size`` the frames are first resized to it (bicubic, antialiased)."""
        if self.cfg.out_size is not None and (x.shape[-1], x.shape[-2]) != self.cfg.out_size:
            w, h = self.cfg.out_size
            x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
        if self.cfg.yuv_out is not None:
            cs, full, bits = self.cfg.yuv_out
            return [Yuv420(p, cs, full, bits) for p in rgb_to_yuv420(x, cs, full, bits).cpu().numpy()]
        peak = 65535.0 if dtype == np.uint16 else 255.0
        q = x.clamp(0, 1).mul(peak).round_()
        q = q.to(torch.int32 if dtype == np.uint16 else torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return [f.astype(dtype, copy=False) for f in q]

    def _forward(self, x: Tensor) -> Tensor:
        with autocast(self.cfg.device, self.cfg.dtype):
            return self._forward_fn(x)

    def infer(self, x: Tensor) -> Tensor:
        """Tiled model call with out-of-memory back-off.

        Args:
            x: ``(B, T, 3, H, W)`` float in [0, 1] on the device (clips, or windows for sliding window).

        Returns:
            ``(B, T_out, 3, s*H, s*W)`` float32.

        Raises:
            OutOfMemoryError: still out of memory at the smallest tile (``MIN_TILE`` px).
        """
        while True:
            t0 = time.perf_counter()
            try:
                lay = self.layout
                y = run_tiled(self._forward, x, self.model.scale, lay.tile, lay.tile_overlap, tile_batch=lay.tile_batch)
                self.times.model_s += time.perf_counter() - t0
                return y
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                if not _is_oom(e):
                    raise
                self._back_off(x.shape[-2:], e)

    def _back_off(self, size: torch.Size, err: BaseException) -> None:
        if self.cfg.device.type == "cuda":
            torch.cuda.empty_cache()
        self.times.oom_retries += 1
        lay = self.layout
        if lay.tile_batch > 1:
            lay.tile_batch //= 2
            return
        current = lay.tile or max(size)
        new = (current // 2) // 8 * 8
        if new < max(MIN_TILE, self.model.record.min_size):  # a smaller tile is padded back up: no saving
            hint = "try --device cpu, a smaller --chunk, or a lighter model" if self.cfg.device.type == "cuda" else (
                "try a smaller --chunk or a lighter model, or free memory (ulimit -v, UPVID_MAX_MEMORY)")
            raise OutOfMemoryError(f"out of memory on {self.cfg.device} even with {current} px tiles; {hint}") from err
        lay.tile = new
        lay.tile_overlap = min(lay.tile_overlap, new // 4)

    # -- streaming -----------------------------------------------------------------------
    def run(self, frames: Iterable[np.ndarray], cuts: CutFinder | None = None, first: int = 0,
            origin: int = 0) -> Iterator[np.ndarray]:
        """Upscale a stream.

        Args:
            frames: ``(H, W, 3)`` RGB frames, ``uint8`` or ``uint16``, or :class:`Yuv420`
                pictures (8-bit), all the same size.
            cuts: scene cuts (:mod:`upvid.engine.shots`): each shot between two cuts is
                upscaled as a sequence of its own (clips restart, windows are padded at the
                cut), so its output equals that of the shot upscaled alone. ``None``: one shot.
            first: index of the first frame in the video (a resumed job starts later).
            origin: recurrent models: the first frame's position in its shot, a clip start of the
                shot's schedule (:func:`~upvid.engine.temporal.resume_start`); the clips and
                IconVSR's keyframe grid then fall where a run from the shot's start puts them.

        Yields:
            ``(s*H, s*W, 3)`` frames of the input's dtype (:class:`Yuv420` with
            ``config.yuv_out``), one per input frame, in order.
        """
        shots = [iter(frames)] if cuts is None else split_shots(frames, cuts, first)
        for k, shot in enumerate(shots):
            if self.model.family == "recurrent":
                yield from self._run_recurrent(shot, origin if k == 0 else 0)
            else:
                yield from self._run_sliding(shot)

    def _run_sliding(self, it: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        frames_n = self.model.record.frames
        r = frames_n // 2
        padding = self.model.record.temporal_padding
        cache: dict[int, np.ndarray] = {}
        n: int | None = None
        last = -1
        centre = 0
        dtype = None
        while n is None or centre < n:
            batch: list[list[int]] = []
            while len(batch) < self.layout.chunk and (n is None or centre + len(batch) < n):
                idx = window_indices(centre + len(batch), frames_n, n, last, padding)
                if idx is None:
                    try:
                        f = next(it)
                    except StopIteration:
                        n = last + 1
                        if n == 0:
                            return
                        continue
                    last += 1
                    cache[last] = f
                    dtype = f.dtype
                    continue
                batch.append(idx)
            if not batch:
                break
            needed = sorted({j for w in batch for j in w})
            x = self._to_tensor([cache[j] for j in needed])
            pos = {j: k for k, j in enumerate(needed)}
            windows = torch.stack([x[[pos[j] for j in w]] for w in batch])  # (B, N, 3, H, W)
            y = self.infer(windows)[:, 0]
            t0 = time.perf_counter()
            result = self._to_numpy(y, dtype)
            self.times.stitch_s += time.perf_counter() - t0
            for f in result:
                yield f
                self.times.frames_out += 1
            centre += len(batch)
            for j in [j for j in cache if j < centre - 2 * r]:  # reflection_circle reads 2r back
                del cache[j]

    def _run_recurrent(self, it: Iterator[np.ndarray], origin: int = 0) -> Iterator[np.ndarray]:
        L, ov = self.layout.chunk, self.cfg.overlap
        grid = max(1, self.model.record.clip_grid)  # a non-last clip ends on this grid (IconVSR's keyframes)
        frames: dict[int, np.ndarray] = {}  # decoded frames still needed (at most the last L + grid - 1)
        pending: dict[int, Tensor] = {}     # partial outputs of the previous clip's overlap
        n_read = 0
        emitted = 0
        clip_start = 0
        prev_end = 0
        exhausted = False
        dtype = None
        while True:
            while not exhausted and n_read < clip_start + L + grid:  # one frame of look-ahead finds the end
                try:
                    f = next(it)
                except StopIteration:
                    exhausted = True
                    break
                frames[n_read] = f
                dtype = f.dtype
                n_read += 1
            if n_read == 0:
                return
            end = min(clip_end(origin + clip_start, L, grid) - origin, n_read)  # on the grid (IconVSR)
            if exhausted and end - clip_start < L and clip_start > 0:
                clip_start = max(0, end - L)  # last clip: reach back for full temporal context
            idx = list(range(clip_start, end))
            last_clip = exhausted and end == n_read
            place = getattr(self.model, "set_clip_position", None)  # IconVSR's keyframe grid (Upscaler)
            if place is not None:
                place(origin + clip_start, last_clip)
            x = self._to_tensor([frames[j] for j in idx])
            if len(idx) == 1:  # recurrent nets need a pair for their flow: mirror the lone frame
                y = self.infer(torch.cat([x, x])[None])[0, :1]
            else:
                y = self.infer(x[None])[0]
            t0 = time.perf_counter()
            blend_from = max(clip_start, emitted)  # cross-fade the previous clip's unemitted frames
            w_prev = crossfade_weights(prev_end - blend_from, self.model.record.clip_blend) if prev_end > blend_from else []
            for k, j in enumerate(range(blend_from, prev_end)):
                pending[j] = pending[j] * w_prev[k] + y[j - clip_start] * (1 - w_prev[k])
            final = end if last_clip else end - ov
            out: list[Tensor] = []
            for k, j in enumerate(idx):
                if j < emitted:
                    continue
                if j >= final:
                    if j not in pending:
                        pending[j] = y[k]
                    continue
                out.append(pending.pop(j) if j in pending else y[k])
            self.times.stitch_s += time.perf_counter() - t0
            if out:
                for f in self._to_numpy(torch.stack(out), dtype):
                    yield f
                    emitted += 1
                    self.times.frames_out += 1
            if last_clip:
                return
            prev_end = end
            clip_start = end - ov
            for j in [j for j in frames if j < min(clip_start, n_read - L)]:
                del frames[j]


def upscale_frames(
    model: Upscaler,
    frames: Iterable[np.ndarray],
    *,
    chunk: int | None = None,
    overlap: int | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    cuts: CutFinder | None = None,
) -> Iterator[np.ndarray]:
    """Convenience wrapper: :class:`Engine` with :meth:`EngineConfig.for_model` defaults.

    Args:
        model: from :func:`upvid.models.load_model` (on ``device``).
        frames: ``(H, W, 3)`` uint8/uint16 RGB frames.
        cuts: scene cuts (e.g. :class:`upvid.engine.shots.DetectedCuts`); ``None``: one shot.

    Yields:
        ``(s*H, s*W, 3)`` frames, one per input, in order.
    """
    cfg = EngineConfig.for_model(model, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap,
                                 device=device, dtype=dtype)
    yield from Engine(model, cfg).run(frames, cuts)
