"""Encode upscaled frames (PyAV): :class:`VideoWriter` writes RGB frames (or GPU-made 4:2:0
planes) as one video stream, plus, optionally, the input's other streams (:mod:`upvid.io.mux`).

Two ways to write:

- :class:`VideoWriter` encodes frames straight into one file (video + other streams).
- Segmented (what ``upvid upscale`` does, for ``--resume``): :class:`VideoWriter` with
  ``copy_streams=False`` writes numbered video-only segments, and :func:`upvid.io.mux.assemble`
  copies their packets (no re-encoding) into the final file with the input's other streams.

Which encoder, pixel format, preset and CRF: :mod:`upvid.io.codecs`. Sizes a pixel format
cannot hold (odd widths/heights in 4:2:0 or 4:2:2) are padded by repeating the last column/row:
H.264/HEVC/VP9/AV1 can only crop in whole chroma samples, so an odd size cannot be stored in
4:2:0 at all. Use a 4:4:4 ``pix_fmt`` (``yuv444p``) to keep the exact size.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from upvid.errors import EncodeError, OutputError
from upvid.frames import Yuv420
from upvid.io.hdr import encoder_params
from upvid.io.codecs import (
    _CHECKED_MUXERS,
    _QUALITY_OPTS,
    _SWS_CS,
    default_codec,
    encoder_formats,
    is_sequential,
    mpeg4_quantiser,
    output_color_range,
    preset_options,
    size_multiple,
    yuv420_target,
)
from upvid.io.mux import _err, _Extras, _output_error
from upvid.io.probe import VideoInfo, bit_depth_of, media_url

log = logging.getLogger(__name__)


class VideoWriter:
    """Write RGB frames as a video stream plus (optionally) the input's other streams.

    Args:
        path: output file (a temporary name; the caller renames it on success). Its suffix picks
            the container unless ``container_format`` is given.
        info: the probed input (timing, colour tags, rotation, SAR, other streams).
        width, height: output frame size (padded to what ``pix_fmt`` needs, see the module doc).
        codec: encoder name (``libx264``, ``libx265``, ``libsvtav1``, ``libvpx-vp9``, ...; ``auto``
            picks by suffix).
        crf: constant rate factor (quality; lower is better).
        preset: encoder speed preset (x264/x265 names; a number for SVT-AV1).
        pix_fmt: encoder pixel format (``yuv420p``, ``yuv420p10le``, ...).
        container_format: FFmpeg muxer name, default from ``path``'s suffix.
        copy_streams: mux the input's audio/subtitle streams and chapters.
        target: write to this binary file object (stdout) instead of ``path`` (then a name for messages).

    Raises:
        OutputError: the file cannot be created.
        EncodeError: unknown encoder, or options it rejects.
    """

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        *,
        width: int,
        height: int,
        codec: str = "libx264",
        crf: int | None = 18,
        preset: str | None = "medium",
        pix_fmt: str = "yuv420p",
        container_format: str | None = None,
        copy_streams: bool = True,
        target: BinaryIO | None = None,
    ) -> None:
        self.info = info
        self.path = Path(path)
        self.width, self.height = width, height
        if codec == "auto":
            codec = default_codec(self.path.suffix)
        fmts = encoder_formats(codec)
        if fmts and pix_fmt not in fmts:
            raise EncodeError(f"encoder {codec} does not take pixel format {pix_fmt} (it takes {', '.join(fmts)})")
        mw, mh = size_multiple(pix_fmt)
        self.enc_width = -(-width // mw) * mw
        self.enc_height = -(-height // mh) * mh
        if (self.enc_width, self.enc_height) != (width, height):
            log.warning("%dx%d is not a size %s can store; padding to %dx%d (repeating the last column/row; "
                        "--pix-fmt yuv444p keeps the exact size)", width, height, pix_fmt, self.enc_width, self.enc_height)
        self.extras: _Extras | None = None
        try:
            self.out = av.open(target if target is not None else media_url(path), "w", format=container_format)
        except av.error.FFmpegError as e:
            raise OutputError(f"{path}: cannot create ({_err(e)})") from e
        except (ValueError, OSError) as e:
            raise OutputError(f"{path}: cannot create ({_err(e)})") from e
        #: The container stores no per-frame times (:data:`SEQUENTIAL_MUXERS`): no B-frames, and a
        #: segment join needs :attr:`written_pts`.
        self.sequential = is_sequential(self.out.format.name)
        try:
            self._add_video(codec, crf, preset, pix_fmt)
            if copy_streams and (info.others or info.container != "image2"):
                self.extras = _Extras(self.out, info, self.path)
        except BaseException:
            self.abort()
            raise
        self._frame_index = 0
        self._last_pts: int | None = None
        self.frames = 0
        #: The pts (input time base) of every frame written, in order.
        self.written_pts: list[int] = []

    # -- video -------------------------------------------------------------------------
    def _add_video(self, codec: str, crf: int | None, preset: str | None, pix_fmt: str) -> None:
        info = self.info
        rate = info.fps.limit_denominator(1001000) if info.fps else Fraction(25)
        canonical = av.codec.Codec(codec, "w").canonical_name
        if self.out.format.name in _CHECKED_MUXERS and canonical not in self.out.supported_codecs:
            raise EncodeError(f"the {self.out.format.name} container cannot hold {canonical} video "
                              f"(from --codec {codec}); its default is {self.out.default_video_codec}")
        try:
            s = self.out.add_stream(codec, rate=rate)
        except (ValueError, av.error.FFmpegError) as e:
            raise EncodeError(f"{self.out.format.name} cannot hold {codec} video ({_err(e)})") from e
        s.width, s.height = self.enc_width, self.enc_height
        s.pix_fmt = pix_fmt
        # AVI counts frames: its time base must be the frame period, or frame times drift (1/600
        # cannot hold 1001/30000); other muxers keep the input's own time base.
        s.time_base = 1 / rate if self.out.format.name == "avi" else info.time_base
        cc = s.codec_context
        cc.time_base = info.time_base
        if codec == "mpeg4" and info.time_base.denominator > 65535:  # MPEG-4 Part 2 time bases are 16-bit
            cc.time_base = 1 / rate
        opts: dict[str, str] = {}
        qname, pname = _QUALITY_OPTS.get(codec, (None, None))
        if crf is not None and qname:
            opts[qname] = str(crf)
            if codec.startswith("libvpx"):
                opts["b"] = "0"
        if codec == "mpeg4" and crf is not None:
            cc.qmin = cc.qmax = mpeg4_quantiser(crf)
        if preset and pname:
            opts.update(preset_options(codec, str(preset)))
        if codec == "libx265":  # keep stderr to upvid's own lines
            opts["x265-params"] = "log-level=error"
        if codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")
        hdr = encoder_params(info.hdr, codec) if bit_depth_of(pix_fmt) >= 10 else None
        if hdr is not None:  # HDR10 mastering display and light levels (the colour tags follow below)
            key, params = hdr
            opts[key] = ":".join(p for p in (opts.get(key), *params) if p)
        cc.options = opts
        if self.sequential:  # no timestamps to reorder B-frames with (AVI, MPEG-PS, Ogg)
            cc.max_b_frames = 0
            if codec.startswith("libvpx"):
                opts["auto-alt-ref"] = "0"  # no invisible frames: one packet per frame
                cc.options = opts
        if info.colorspace != 2:
            cc.colorspace = info.colorspace
        if info.color_primaries != 2:
            cc.color_primaries = info.color_primaries
        if info.color_trc != 2:
            cc.color_trc = info.color_trc
        cc.color_range = output_color_range(info, pix_fmt)
        if info.sample_aspect_ratio and info.sample_aspect_ratio != 1:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            try:
                s.set_display_rotation(info.rotation)
            except Exception as e:  # pragma: no cover - container without display matrix support
                log.warning("cannot keep rotation %s: %s", info.rotation, e)
        self.video = s
        self._dst_cs = _SWS_CS.get(info.colorspace)
        self._dst_range = "JPEG" if cc.color_range == 2 else "MPEG"
        #: ``(colorspace, full_range, bits)`` of :class:`~upvid.frames.Yuv420` pictures :meth:`write`
        #: takes as they are (8- or 10-bit 4:2:0 output of even size), or ``None``.
        self.yuv_target = yuv420_target(info, self.width, self.height, self.video.pix_fmt)

    def write(self, rgb: np.ndarray | Yuv420, pts: int | None = None) -> None:
        """Encode one frame.

        Args:
            rgb: ``(height, width, 3)`` RGB, ``uint8`` or ``uint16`` (full scale); or a
                :class:`~upvid.frames.Yuv420` in the matrix/range of :attr:`yuv_target`
                (converted on the GPU by the engine; encoded without conversion).
            pts: presentation timestamp in the input video's time base; ``None``: frame index / fps.

        Raises:
            EncodeError: the encoder rejected the frame, or a :class:`Yuv420` it cannot take;
                OutputError: the disk is full.
        """
        if rgb.shape != (self.height, self.width, 3):
            raise EncodeError(f"frame is {rgb.shape}, encoder expects {(self.height, self.width, 3)}")
        if isinstance(rgb, Yuv420):
            if (rgb.colorspace, rgb.full_range, rgb.bits) != self.yuv_target:
                raise EncodeError(f"4:2:0 planes ({rgb.colorspace}, full range {rgb.full_range}, {rgb.bits} bits) do "
                                  f"not match the encoder ({self.video.pix_fmt}, {self.yuv_target})")
            planes = rgb.planes if rgb.bits == 8 else rgb.planes.astype(np.uint16, copy=False)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format=self.video.pix_fmt)
        else:
            if (self.enc_width, self.enc_height) != (self.width, self.height):
                rgb = np.pad(rgb, ((0, self.enc_height - self.height), (0, self.enc_width - self.width), (0, 0)),
                             mode="edge")
            fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
            frame = frame.reformat(format=self.video.pix_fmt, dst_colorspace=self._dst_cs,
                                   dst_color_range=self._dst_range)
        if pts is None:
            pts = int(round(self._frame_index / (self.info.fps * self.info.time_base))) if self.info.fps else self._frame_index
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # keep pts strictly increasing (duplicate timestamps in the source)
        self._last_pts = pts
        self.written_pts.append(pts)
        frame.pts = pts
        frame.time_base = self.info.time_base
        self._frame_index += 1
        self._encode(frame)
        self.frames += 1
        if self.extras is not None:
            self.extras.pump(float(pts * self.info.time_base))

    def _encode(self, frame: av.VideoFrame | None) -> None:
        try:
            packets = self.video.encode(frame)
            self.out.mux(packets)
        except av.error.FFmpegError as e:
            if getattr(e, "errno", None) == 28:  # ENOSPC
                raise OutputError(f"{self.path}: no space left on device") from e
            raise EncodeError(f"encoder {self.video.codec_context.name}: {_err(e)}") from e
        except OSError as e:
            raise _output_error(self.path, e) from e

    # -- end ---------------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, mux the remaining copied packets, finish the file.

        Raises:
            EncodeError / OutputError: as :meth:`write`.
        """
        try:
            self._encode(None)
            if self.extras is not None:
                self.extras.finish()
            try:
                self.out.close()
            except av.error.FFmpegError as e:
                raise _output_error(self.path, e) from e
            except OSError as e:
                raise _output_error(self.path, e) from e
        finally:
            if self.extras is not None:
                self.extras.close()

    def abort(self) -> None:
        """Close everything without finishing; the caller deletes the file."""
        if self.extras is not None:
            self.extras.close()
        try:
            if getattr(self, "out", None) is not None:
                self.out.close()
        except Exception:  # noqa: BLE001
            pass
