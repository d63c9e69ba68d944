"""The only code that touches PyAV: probe, decode, encode and mux."""

from upvid.io.probe import StreamInfo, VideoInfo, probe
from upvid.io.reader import DecodedFrame, read_frames
from upvid.io.mux import unique_temp_path
from upvid.io.writer import VideoWriter

__all__ = ["DecodedFrame", "StreamInfo", "VideoInfo", "VideoWriter", "probe", "read_frames", "unique_temp_path"]
