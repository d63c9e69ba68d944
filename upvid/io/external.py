"""``--encoder ffmpeg``: encode the HR frames with an external ffmpeg binary (through ffmpeg-python).

For encoders PyAV's wheel does not have, hardware ones above all (``h264_nvenc``, ``hevc_nvenc``,
``av1_nvenc``, ``hevc_vaapi``, ``h264_qsv``, ...). The frames are piped to ``ffmpeg`` as raw RGB;
each segment it writes is then joined and muxed with the input's audio, subtitles and chapters by
upvid itself, exactly as for the in-process encoder. B-frames are off and every frame's
timestamp is recorded, so the join gives the segments the input's own (variable) frame times.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path

import numpy as np

from upvid.errors import EncodeError
from upvid.frames import Yuv420
from upvid.io.probe import VideoInfo, bit_depth_of

log = logging.getLogger("upvid")

#: ``--encoder`` values.
ENCODERS = ("pyav", "ffmpeg")


def ffmpeg_binary() -> str:
    """The ffmpeg executable: ``$UPVID_FFMPEG``, else ``ffmpeg`` on ``PATH``.

    Raises:
        EncodeError: there is none (exit 8).
    """
    env = os.environ.get("UPVID_FFMPEG")
    exe = shutil.which(env) if env else shutil.which("ffmpeg")
    if not exe:
        where = f"UPVID_FFMPEG={env!r} is not an executable" if env else "no 'ffmpeg' on PATH"
        raise EncodeError(f"--encoder ffmpeg needs an ffmpeg binary: {where} (install FFmpeg, e.g. apt install "
                          "ffmpeg, or set UPVID_FFMPEG to its path)")
    return exe


def default_pix_fmt(pix_fmt: str, bit_depth: int | None, source_depth: int) -> str:
    """``--pix-fmt auto`` for an external encoder: 4:2:0, 10 bits for a deep source or ``--bit-depth 10``."""
    if pix_fmt != "auto":
        return pix_fmt
    deep = bit_depth == 10 or (bit_depth is None and source_depth > 8)
    return "yuv420p10le" if deep else "yuv420p"


def quality_args(codec: str, crf: int | None, preset: str | None) -> dict[str, str]:
    """ffmpeg output options for ``--crf``/``--preset`` in the encoder's own terms."""
    out: dict[str, str] = {}
    if crf is not None:
        if "nvenc" in codec:
            out.update(rc="vbr", cq=str(crf), b="0")
        elif "vaapi" in codec or "qsv" in codec:
            out["global_quality" if "qsv" in codec else "qp"] = str(crf)
        else:
            out["crf"] = str(crf)
    if preset and "vaapi" not in codec:
        out["preset"] = str(preset)
    return out


class FfmpegWriter:
    """The :class:`~upvid.io.writer.VideoWriter` interface over an ``ffmpeg`` child process.

    Args:
        path: the segment file to write (its suffix picks ffmpeg's muxer).
        info: the input's :class:`VideoInfo` (rate, colour tags, time base of ``pts``).
        width, height: frame size.
        codec: any encoder of the ffmpeg binary.
        crf, preset: quality and speed (mapped by :func:`quality_args`).
        pix_fmt: the encoded pixel format (``yuv420p``, ``yuv420p10le``, ``p010le``, ...).

    Raises:
        EncodeError: no ffmpeg binary, or it does not start.
    """

    #: Segments are joined with the recorded frame times (raw video in carries none).
    sequential = True
    yuv_target = None

    def __init__(self, path: Path, info: VideoInfo, *, width: int, height: int, codec: str, crf: int | None = 18,
                 preset: str | None = "medium", pix_fmt: str = "yuv420p", container_format: str | None = None,
                 copy_streams: bool = False, target=None) -> None:
        import ffmpeg

        if target is not None or copy_streams:
            raise EncodeError("--encoder ffmpeg writes segment files (no streams copied, no stdout)")
        exe = ffmpeg_binary()
        self.path, self.info, self.codec = Path(path), info, codec
        self.width, self.height = width, height
        self.deep = bit_depth_of(pix_fmt) > 8
        rate = info.fps.limit_denominator(1001000) if info.fps else Fraction(25)
        out = {"vcodec": codec, "pix_fmt": pix_fmt, "bf": "0", **quality_args(codec, crf, preset)}
        for key, value, unset in (("color_primaries", info.color_primaries, 2), ("color_trc", info.color_trc, 2),
                                  ("colorspace", info.colorspace, 2)):
            if value != unset:
                out[key] = str(value)
        if info.color_range:
            out["color_range"] = str(info.color_range)
        if container_format:
            out["format"] = container_format
        node = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb48le" if self.deep else "rgb24",
                            s=f"{width}x{height}", framerate=str(rate))
        node = node.output(str(self.path), an=None, **out).global_args("-hide_banner", "-loglevel", "error", "-nostdin")
        self.args = node.overwrite_output().compile(cmd=exe)
        try:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        except OSError as e:
            raise EncodeError(f"{exe}: cannot start ({e.strerror or e})") from e
        self._stderr: deque[bytes] = deque(maxlen=40)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self._frame_index = 0
        self._last_pts: int | None = None
        self.frames = 0
        self.written_pts: list[int] = []

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _failure(self) -> str:
        self._reader.join(timeout=5)
        tail = b"".join(self._stderr).decode(errors="replace").strip().splitlines()
        return tail[-1] if tail else f"exit code {self.proc.returncode}"

    def write(self, rgb: np.ndarray | Yuv420, pts: int | None = None) -> None:
        """Send one ``(height, width, 3)`` RGB frame (uint8; uint16 for a deep output) to ffmpeg.

        Raises:
            EncodeError: a frame of another size, or ffmpeg stopped.
        """
        if isinstance(rgb, Yuv420) or rgb.shape != (self.height, self.width, 3):
            raise EncodeError(f"frame {getattr(rgb, 'shape', None)} is not the ({self.height}, {self.width}, 3) "
                              "RGB the external encoder takes")
        if self.deep and rgb.dtype == np.uint8:
            rgb = rgb.astype(np.uint16) * 257
        elif not self.deep and rgb.dtype == np.uint16:
            rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)
        if pts is None:
            pts = int(round(self._frame_index / (self.info.fps * self.info.time_base))) if self.info.fps else self._frame_index
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        try:
            self.proc.stdin.write(np.ascontiguousarray(rgb).astype("<u2" if self.deep else np.uint8, copy=False).tobytes())
        except (BrokenPipeError, OSError) as e:
            self.proc.wait()
            raise EncodeError(f"ffmpeg ({self.codec}) stopped: {self._failure()}") from e
        self.written_pts.append(pts)
        self._frame_index += 1
        self.frames += 1

    def close(self) -> None:
        """Finish the segment.

        Raises:
            EncodeError: ffmpeg failed (its last stderr line is in the message).
        """
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.wait() != 0:
            raise EncodeError(f"ffmpeg ({self.codec}) failed: {self._failure()}")

    def abort(self) -> None:
        """Stop ffmpeg without finishing; the caller deletes the file."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
