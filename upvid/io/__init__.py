"""The only code that touches PyAV: probe, decode, encode and mux."""

from upvid.io.probe import StreamInfo, VideoInfo, probe
from upvid.io.reader import DecodedFrame, read_frames
from upvid.io.writer import VideoWriter, unique_temp_path

__all__ = ["DecodedFrame", "StreamInfo", "VideoInfo", "VideoWriter", "probe", "read_frames", "unique_temp_path"]
