"""Encode upscaled frames and mux them with the input's audio/subtitle streams (PyAV).

Audio and subtitle packets are copied without re-encoding when the output container accepts
their codec; audio it does not accept is transcoded (AAC for mp4/mov/mkv, Opus for webm);
subtitles it does not accept are dropped with a warning. Copied packets are interleaved with
the video as it is written (a second demuxer on the input follows the video clock), so memory
stays bounded and the output plays and seeks like the input.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from upvid.errors import EncodeError, OutputError
from upvid.io.probe import VideoInfo, open_input

log = logging.getLogger(__name__)

#: Encoder defaults: codec -> (quality option name, preset option name or None).
_QUALITY_OPTS = {
    "libx264": ("crf", "preset"),
    "libx265": ("crf", "preset"),
    "libsvtav1": ("crf", "preset"),
    "libaom-av1": ("crf", "cpu-used"),
    "libvpx-vp9": ("crf", "deadline"),
    "libvpx": ("crf", "deadline"),
}

# AVColorSpace (codec tag) -> swscale colourspace name for the RGB -> YUV matrix.
_SWS_CS = {1: "itu709", 4: "fcc", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


#: Audio codecs that players accept in MP4 (FFmpeg can mux more, e.g. Vorbis, that few players read).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"}


def _copyable(codec: str, kind: str, out: av.container.OutputContainer) -> bool:
    """Whether ``codec`` can be stream-copied into ``out`` and played back."""
    if codec not in out.supported_codecs:
        return False
    if kind == "audio" and out.format.name == "mp4":
        return codec in _MP4_AUDIO
    return True


def _err(e: av.error.FFmpegError) -> str:
    return e.strerror or str(e)


class VideoWriter:
    """Write RGB frames as a video stream plus the input's other streams.

    Args:
        path: output file (a temporary name; the caller renames it on success). Its suffix picks
            the container unless ``container_format`` is given.
        info: the probed input (timing, colour tags, rotation, SAR, other streams).
        width, height: output frame size.
        codec: encoder name (``libx264``, ``libx265``, ``libsvtav1``, ``libvpx-vp9``, ...).
        crf: constant rate factor (quality; lower is better).
        preset: encoder speed preset (x264/x265 names; a number for SVT-AV1).
        pix_fmt: encoder pixel format (``yuv420p``, ``yuv420p10le``, ...).
        container_format: FFmpeg muxer name, default from ``path``'s suffix.
        copy_streams: mux the input's audio/subtitle streams.

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
    ) -> None:
        self.info = info
        self.path = Path(path)
        self.width, self.height = width, height
        try:
            self.out = av.open(str(path), "w", format=container_format)
        except av.error.FFmpegError as e:
            raise OutputError(f"{path}: cannot create ({_err(e)})") from e
        except ValueError as e:
            raise OutputError(f"{path}: unknown output container ({e})") from e
        try:
            self._add_video(codec, crf, preset, pix_fmt)
        except BaseException:
            self.abort()
            raise
        self._aux_in: av.container.InputContainer | None = None
        self._map: dict[int, tuple[av.stream.Stream, object]] = {}
        if copy_streams and info.others:
            self._open_aux()
        self._pending: av.Packet | None = None
        self._aux_iter = self._aux_in.demux(*[self._aux_in.streams[i] for i in self._map]) if self._map else None
        self._frame_index = 0
        self._last_pts: int | None = None

    # -- video -------------------------------------------------------------------------
    def _add_video(self, codec: str, crf: int | None, preset: str | None, pix_fmt: str) -> None:
        info = self.info
        try:
            av.codec.Codec(codec, "w")
        except (ValueError, av.error.FFmpegError) as e:
            raise EncodeError(f"unknown encoder {codec!r}") from e
        rate = info.fps.limit_denominator(1001000) if info.fps else Fraction(25)
        s = self.out.add_stream(codec, rate=rate)
        s.width, s.height = self.width, self.height
        s.pix_fmt = pix_fmt
        s.time_base = info.time_base
        cc = s.codec_context
        cc.time_base = info.time_base
        opts: dict[str, str] = {}
        qname, pname = _QUALITY_OPTS.get(codec, (None, None))
        if crf is not None and qname:
            opts[qname] = str(crf)
            if codec.startswith("libvpx"):
                opts["b"] = "0"
        if preset and pname:
            opts[pname] = str(preset)
        cc.options = opts
        if info.colorspace != 2:
            cc.colorspace = info.colorspace
        if info.color_primaries != 2:
            cc.color_primaries = info.color_primaries
        if info.color_trc != 2:
            cc.color_trc = info.color_trc
        cc.color_range = 2 if info.color_range == 2 and pix_fmt.startswith("yuvj") else (info.color_range or 0)
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

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one frame.

        Args:
            rgb: ``(height, width, 3)`` RGB, ``uint8`` or ``uint16`` (full scale).
            pts: presentation timestamp in the input video's time base; ``None``: frame index / fps.

        Raises:
            EncodeError: the encoder rejected the frame; OutputError: the disk is full.
        """
        if rgb.shape != (self.height, self.width, 3):
            raise EncodeError(f"frame is {rgb.shape}, encoder expects {(self.height, self.width, 3)}")
        fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
        frame = frame.reformat(format=self.video.pix_fmt, dst_colorspace=self._dst_cs, dst_color_range=self._dst_range)
        if pts is None:
            pts = int(round(self._frame_index / (self.info.fps * self.info.time_base))) if self.info.fps else self._frame_index
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # keep pts strictly increasing (duplicate timestamps in the source)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self.info.time_base
        self._frame_index += 1
        self._encode(frame)
        self._pump(float(pts * self.info.time_base))

    def _encode(self, frame: av.VideoFrame | None) -> None:
        try:
            packets = self.video.encode(frame)
            self.out.mux(packets)
        except av.error.FFmpegError as e:
            if getattr(e, "errno", None) == 28:  # ENOSPC
                raise OutputError(f"{self.path}: no space left on device") from e
            raise EncodeError(f"encoder {self.video.codec_context.name}: {_err(e)}") from e
        except OSError as e:
            raise OutputError(f"{self.path}: {e.strerror or e}") from e

    # -- other streams -------------------------------------------------------------------
    def _open_aux(self) -> None:
        self._aux_in = open_input(self.info.path)
        supported = self.out.supported_codecs
        has_opus = "opus" in supported and self.out.format.name != "mp4"
        for si in self.info.others:
            src = self._aux_in.streams[si.index]
            name = src.codec_context.name if src.codec_context else None
            if src.type not in ("audio", "subtitle") or name is None:
                continue
            if _copyable(name, src.type, self.out):
                try:
                    dst = self.out.add_stream_from_template(src)
                    dst.metadata.update(src.metadata)
                    dst.disposition = src.disposition
                    self._map[si.index] = (dst, None)
                    continue
                except (ValueError, av.error.FFmpegError) as e:
                    log.warning("stream #%d (%s): cannot copy (%s)", si.index, name, e)
            if src.type == "audio":
                target = "libopus" if has_opus and "aac" not in supported else ("aac" if "aac" in supported else self.out.default_audio_codec)
                rate = src.codec_context.sample_rate
                if target == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                    rate = 48000
                dst = self.out.add_stream(target, rate=rate)
                layout = src.codec_context.layout.name if src.codec_context.layout else "stereo"
                dst.layout = layout
                dst.metadata.update(src.metadata)
                fsize = dst.codec_context.frame_size or 1024
                resampler = av.AudioResampler(format=dst.codec_context.format or "fltp", layout=layout, rate=rate,
                                              frame_size=fsize if target != "pcm_s16le" else None)
                log.info("stream #%d: %s not accepted by the container; transcoding to %s", si.index, name, target)
                self._map[si.index] = (dst, resampler)
            else:
                log.warning("stream #%d: %s subtitles cannot go into this container; dropped", si.index, name)

    def _mux_aux(self, packet: av.Packet) -> None:
        dst, resampler = self._map[packet.stream.index]
        if resampler is None:
            if packet.dts is None and packet.pts is None:
                return
            packet.stream = dst
            self.out.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError as e:
            log.warning("skipping an undecodable audio packet (%s)", e)
            return
        for frame in frames:
            frame.pts = None
            for rf in resampler.resample(frame):
                self.out.mux(dst.encode(rf))

    def _pump(self, until: float | None) -> None:
        """Mux copied packets up to ``until`` seconds (all remaining if ``None``)."""
        if self._aux_iter is None:
            return
        while True:
            pkt = self._pending
            self._pending = None
            if pkt is None:
                try:
                    pkt = next(self._aux_iter)
                except StopIteration:
                    self._aux_iter = None
                    return
                except av.error.FFmpegError as e:
                    log.warning("stopping audio/subtitle copy at a demux error (%s)", e)
                    self._aux_iter = None
                    return
            if pkt.size == 0 and pkt.pts is None:
                continue  # flush packet
            t = pkt.pts if pkt.pts is not None else pkt.dts
            if until is not None and t is not None and float(t * pkt.time_base) > until + 0.5:
                self._pending = pkt
                return
            self._mux_aux(pkt)

    # -- end ---------------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, mux the remaining copied packets, finish the file.

        Raises:
            EncodeError / OutputError: as :meth:`write`.
        """
        self._encode(None)
        self._pump(None)
        for dst, resampler in self._map.values():
            if resampler is not None:
                for rf in resampler.resample(None):
                    self.out.mux(dst.encode(rf))
                self.out.mux(dst.encode(None))
        try:
            self.out.close()
        except av.error.FFmpegError as e:
            raise OutputError(f"{self.path}: cannot finish the file ({_err(e)})") from e
        finally:
            if self._aux_in is not None:
                self._aux_in.close()

    def abort(self) -> None:
        """Close everything without finishing; the caller deletes the file."""
        for c in (getattr(self, "out", None), getattr(self, "_aux_in", None)):
            try:
                if c is not None:
                    c.close()
            except Exception:
                pass


def unique_temp_path(final: Path) -> Path:
    """A temporary name next to ``final`` keeping its suffix (so the muxer is chosen the same way)."""
    return final.with_name(f".{final.stem}.upvid-{os.getpid()}.partial{final.suffix}")
