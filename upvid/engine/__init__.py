"""The only code that knows chunks, temporal padding, tiles, stitching and threads."""

from upvid.engine.device import resolve_device, resolve_dtype
from upvid.engine.upscale import Engine, EngineConfig, Layout, StageTimes, queue_size, upscale_frames

__all__ = ["Engine", "EngineConfig", "Layout", "StageTimes", "queue_size", "resolve_device", "resolve_dtype", "upscale_frames"]
