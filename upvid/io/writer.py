"""Encode upscaled frames and mux them with the input's audio/subtitle streams and chapters (PyAV).

Audio and subtitle packets are copied without re-encoding when the output container accepts
their codec; audio it does not accept is transcoded (AAC for mp4/mov/mkv/avi, Opus for webm);
subtitles it does not accept are dropped with a warning. Copied packets are interleaved with
the video as it is written (a second demuxer on the input follows the video clock), so memory
stays bounded and the output plays and seeks like the input. Chapters and the container's
title/language style metadata are copied too.

Two ways to write:

- :class:`VideoWriter` encodes frames straight into one file (video + other streams).
- Segmented (what ``upvid upscale`` does, for ``--resume``): :class:`VideoWriter` with
  ``copy_streams=False`` writes numbered video-only segments, and :func:`assemble` copies their
  packets (no re-encoding) into the final file together with the input's other streams.

Sizes a pixel format cannot hold (odd widths/heights in 4:2:0 or 4:2:2) are padded by repeating
the last column/row: H.264/HEVC/VP9/AV1 can only crop in whole chroma samples, so an odd size
cannot be stored in 4:2:0 at all. Use a 4:4:4 ``pix_fmt`` (``yuv444p``) to keep the exact size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from upvid.errors import EncodeError, OutputError
from upvid.frames import YUV_MATRICES, Yuv420
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


def output_color_range(info: VideoInfo, pix_fmt: str) -> int:
    """The ``AVColorRange`` the encoder is given: the input's (2 = full for yuvj formats and full-range inputs)."""
    return 2 if info.color_range == 2 and pix_fmt.startswith("yuvj") else (info.color_range or 0)


def yuv420_target(info: VideoInfo, width: int, height: int, pix_fmt: str) -> tuple[int, bool] | None:
    """``(colorspace, full_range)`` in which 4:2:0 planes made elsewhere (the GPU) can go straight
    to an encoder of ``pix_fmt`` at ``width x height``, or ``None`` (RGB through libswscale then).

    Only for 8-bit 4:2:0 output of even size in a matrix :mod:`upvid.engine.colour` knows;
    the matrix is the input's, as :class:`VideoWriter` tags and converts RGB.
    """
    if pix_fmt not in ("yuv420p", "yuvj420p") or width % 2 or height % 2 or info.colorspace not in YUV_MATRICES:
        return None
    return info.colorspace, output_color_range(info, pix_fmt) == 2


#: Audio codecs that players accept in MP4 (FFmpeg can mux more, e.g. Vorbis, that few players read).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"}

#: Video file suffixes upvid writes as a video (anything else, or no suffix, is an image folder).
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".nut", ".ts", ".mts"}

#: Encoder used when ``codec="auto"``: by output suffix (default libx264).
_AUTO_CODEC = {".webm": "libvpx-vp9", ".ogv": "libvpx"}

#: Pixel formats with more than 8 bits per component, by encoder (``--bit-depth 10``).
_DEEP_FMT = {"libx264": "yuv420p10le", "libx265": "yuv420p10le", "libsvtav1": "yuv420p10le",
             "libvpx-vp9": "yuv420p10le", "libaom-av1": "yuv420p10le", "ffv1": "yuv420p10le"}

#: Muxers keeping subtitles upvid may copy, by codec (FFmpeg's own lists are broader than players').
_MOV_LIKE = {"mp4", "mov"}


#: Muxers that store no presentation time per frame (AVI counts frames, MPEG-PS/Ogg carry sparse or
#: granule-based times): upvid writes them without B-frames (decode order = presentation order) and
#: the segment join takes each frame's time from the journal, not from the demuxer.
SEQUENTIAL_MUXERS = {"avi", "mpeg", "vob", "dvd", "svcd", "vcd", "mpeg1video", "mpeg2video", "ogg", "ogv"}

#: Muxers whose FFmpeg codec list is reliable enough to refuse a codec before encoding.
_CHECKED_MUXERS = {"mp4", "mov", "webm", "matroska", "avi", "ogg", "ipod"}


def is_sequential(muxer: str) -> bool:
    """Whether FFmpeg muxer ``muxer`` (``avi``, ``mpeg``, ``ogg``...) stores no exact per-frame time."""
    return any(m in SEQUENTIAL_MUXERS for m in muxer.split(","))


#: Encoder of the source's codec family, for ``codec="auto"`` where the suffix does not decide:
#: an HEVC (often 10-bit) or AV1 source stays HEVC/AV1 instead of becoming H.264 High 10.
_FAMILY_CODEC = {"hevc": "libx265", "av1": "libsvtav1"}

#: Muxers (by suffix) known to hold HEVC and AV1 video.
_FAMILY_SUFFIXES = {".mp4", ".m4v", ".mkv", ".mov", ".nut", ".ts", ".mts", ".m2ts"}


def default_codec(suffix: str, source_codec: str | None = None) -> str:
    """The encoder ``--codec auto`` picks: by output suffix (``.webm``: VP9, ``.ogv``: VP8), else the
    source's family when the container holds it (HEVC -> libx265, AV1 -> libsvtav1, if FFmpeg has
    that encoder), else H.264 (libx264)."""
    suffix = suffix.lower()
    if suffix in _AUTO_CODEC:
        return _AUTO_CODEC[suffix]
    family = _FAMILY_CODEC.get(source_codec or "")
    if family and suffix in _FAMILY_SUFFIXES and family in av.codecs_available:
        return family
    return "libx264"


def encoder_formats(codec: str) -> list[str]:
    """Pixel formats an encoder accepts.

    Raises:
        EncodeError: unknown encoder.
    """
    try:
        c = av.codec.Codec(codec, "w")
    except (ValueError, av.error.FFmpegError) as e:
        raise EncodeError(f"unknown encoder {codec!r} (see `ffmpeg -encoders`; e.g. libx264, libx265, libsvtav1, libvpx-vp9)") from e
    if c.type != "video":
        raise EncodeError(f"{codec!r} is not a video encoder")
    return [f.name for f in (c.video_formats or [])]


def choose_pix_fmt(codec: str, requested: str, bit_depth: int | None, source_bits: int) -> str:
    """Resolve ``--pix-fmt`` / ``--bit-depth`` for ``codec``.

    ``requested="auto"``: ``yuv420p``, or the encoder's 10-bit 4:2:0 format when ``bit_depth`` is 10
    or more, or when ``bit_depth`` is ``None`` and the source has more than 8 bits (falling back
    to 8 bits with a warning if the encoder has no deeper format).

    Raises:
        EncodeError: unknown encoder, or a format it does not accept.
        UsageError-like EncodeError: ``bit_depth`` the encoder cannot write.
    """
    fmts = encoder_formats(codec)
    if requested != "auto":
        if fmts and requested not in fmts:
            raise EncodeError(f"encoder {codec} does not take --pix-fmt {requested} (it takes {', '.join(fmts)})")
        return requested
    want_deep = (bit_depth or 0) > 8 or (bit_depth is None and source_bits > 8)
    if want_deep:
        deep = _DEEP_FMT.get(codec, "yuv420p10le")
        if deep in fmts or not fmts:
            return deep
        if bit_depth:
            raise EncodeError(f"encoder {codec} cannot write {bit_depth}-bit video; use --codec libx265 or libsvtav1")
        log.warning("encoder %s has no 10-bit format; writing 8-bit yuv420p from the %d-bit source", codec, source_bits)
    if fmts and "yuv420p" not in fmts:
        return fmts[0]
    return "yuv420p"


def check_frame_size(width: int, height: int) -> None:
    """Refuse an output frame size FFmpeg cannot allocate (``av_image_check_size``:
    ``(w + 128) * (h + 128) < INT_MAX / 8``, e.g. 16384x16384), before any frame is computed.

    Raises:
        EncodeError: the size is over that limit.
    """
    if (width + 128) * (height + 128) >= (2**31 - 1) // 8:
        raise EncodeError(f"{width}x{height} output frames are larger than FFmpeg can hold "
                          f"(about 16000x16000 at most); use a smaller --scale")


def size_multiple(pix_fmt: str) -> tuple[int, int]:
    """Width and height multiples a pixel format needs (2, 2 for 4:2:0; 1, 1 for 4:4:4 and RGB)."""
    try:
        f = av.VideoFormat(pix_fmt, 1024, 1024)
    except (ValueError, av.error.FFmpegError):
        return 1, 1
    mw = mh = 1
    for c in f.components:
        if c.is_chroma and c.width and c.height:
            mw, mh = max(mw, 1024 // c.width), max(mh, 1024 // c.height)
    return mw, mh


_X264_PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"]
_SVT_PRESET = dict(zip(_X264_PRESETS, ["12", "11", "10", "9", "8", "7", "5", "4", "2", "0"]))
_VPX_CPU_USED = dict(zip(_X264_PRESETS, ["8", "7", "6", "5", "4", "2", "1", "0", "0", "0"]))


def _preset_options(codec: str, preset: str) -> dict[str, str]:
    """Encoder options for ``--preset``: x264/x265 names are mapped to SVT-AV1 preset numbers and
    libvpx ``cpu-used``/``deadline``; a value the encoder understands natively is passed through."""
    if codec in ("libx264", "libx265"):
        return {"preset": preset}
    if codec == "libsvtav1":
        return {"preset": _SVT_PRESET.get(preset, preset)}
    if codec.startswith("libvpx"):
        if preset in ("good", "best", "realtime"):
            return {"deadline": preset}
        if preset in _VPX_CPU_USED:
            return {"deadline": "best" if preset == "placebo" else "good", "cpu-used": _VPX_CPU_USED[preset]}
        return {"cpu-used": preset}
    if codec == "libaom-av1":
        return {"cpu-used": _VPX_CPU_USED.get(preset, preset)}
    return {}


#: Constant-rate-factor ranges by encoder.
_CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (0, 63), "libaom-av1": (0, 63),
              "libvpx-vp9": (0, 63), "libvpx": (4, 63)}


def check_encoder_options(codec: str, crf: int | None, preset: str | None) -> None:
    """Validate ``--crf`` and ``--preset`` for ``codec`` before any work.

    Raises:
        UsageError: a CRF outside the encoder's range or a preset it does not know, naming the
            valid range or names.
    """
    from upvid.errors import UsageError

    lo_hi = _CRF_RANGE.get(codec)
    if crf is not None and lo_hi and not lo_hi[0] <= crf <= lo_hi[1]:
        raise UsageError(f"--crf {crf} is outside {codec}'s range {lo_hi[0]}..{lo_hi[1]}")
    if not preset or codec not in _QUALITY_OPTS:
        return
    preset = str(preset)
    if codec in ("libx264", "libx265"):
        valid, numbers = _X264_PRESETS, None
    elif codec == "libsvtav1":
        valid, numbers = _X264_PRESETS, range(0, 14)
    elif codec.startswith("libvpx"):
        valid, numbers = [*_X264_PRESETS, "good", "best", "realtime"], range(-8, 9) if codec == "libvpx-vp9" else range(-16, 17)
    else:  # libaom-av1
        valid, numbers = _X264_PRESETS, range(0, 9)
    if preset in valid or (numbers is not None and preset.lstrip("-").isdigit() and int(preset) in numbers):
        return
    extra = f", or {numbers.start}..{numbers.stop - 1}" if numbers is not None else ""
    raise UsageError(f"--preset {preset!r} is not a {codec} preset; use one of {', '.join(valid)}{extra}")


def _copyable(codec: str, kind: str, out: av.container.OutputContainer) -> bool:
    """Whether ``codec`` can be stream-copied into ``out`` and played back."""
    if codec not in out.supported_codecs:
        return False
    name = out.format.name
    if kind == "audio" and name == "mp4":
        return codec in _MP4_AUDIO
    if kind == "audio" and name == "mov":  # FFmpeg: "opus/flac only supported in MP4"
        return codec in _MP4_AUDIO - {"opus", "flac"} or codec.startswith("pcm_")
    if kind == "subtitle":
        if name in _MOV_LIKE or name.startswith("mov"):
            return codec == "mov_text"
        if name == "webm":
            return codec == "webvtt"
        if name == "avi":
            return False
    return True


_TEXT_SUBS = {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"}
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    b"MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,"
    b"10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def _text_sub_target(out: av.container.OutputContainer) -> str | None:
    """The text subtitle codec a container takes: mov_text (mp4/mov), webvtt (webm), subrip (mkv)."""
    name = out.format.name
    if name in _MOV_LIKE or name.startswith("mov") or name == "ipod":
        return "mov_text"
    if name == "webm":
        return "webvtt"
    if name == "matroska":
        return "subrip"
    return None


def _err(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


def _output_error(path: Path, e: BaseException) -> OutputError:
    if getattr(e, "errno", None) == 28:
        return OutputError(f"{path}: no space left on device")
    return OutputError(f"{path}: {_err(e)}")


#: ``--audio-codec`` choices -> FFmpeg encoders (``copy``: keep the packets where the container takes them).
AUDIO_CODECS = {"copy": None, "aac": "aac", "opus": "libopus", "flac": "flac"}


@dataclass(frozen=True)
class AudioOptions:
    """What happens to the input's audio tracks.

    Attributes:
        codec: ``"copy"`` (stream copy where the container accepts it, else transcode, as
            without options), ``"aac"``, ``"opus"`` or ``"flac"`` (always transcoded), or
            ``"none"`` (``--no-audio``: audio dropped; subtitles and chapters kept).
        bitrate: encoder bit rate in bits/s for transcoded audio (``None``: the encoder's default).
    """

    codec: str = "copy"
    bitrate: int | None = None


class _Extras:
    """The input's audio/subtitle streams and chapters, copied (or transcoded) into ``out``.

    Packets are read by a second demuxer on the input and muxed as the video clock advances
    (:meth:`pump`), so audio and video interleave without buffering the whole track.
    """

    def __init__(self, out: av.container.OutputContainer, info: VideoInfo, path: Path,
                 audio: AudioOptions | None = None) -> None:
        self.out = out
        self.path = path
        self.audio = audio or AudioOptions()
        self.skipped: dict[str, int] = {}  # warnings said once, then counted
        self.source_name = info.path.name
        self.inp: av.container.InputContainer | None = None
        self.map: dict[int, tuple[av.stream.Stream, object]] = {}
        self.pending: av.Packet | None = None
        self.iter = None
        if info.container == "image2" or info.path.is_dir():
            return
        try:
            self.inp = open_input(info.path)
        except Exception as e:  # noqa: BLE001 - the video was readable; extras are best effort
            log.warning("cannot reopen %s for its audio/subtitles (%s)", info.path, e)
            return
        try:
            chapters = self.inp.chapters()
            if chapters:
                out.set_chapters(chapters)
            for k, v in self.inp.metadata.items():
                if k.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands", "creation_time"):
                    out.metadata[k] = v
        except Exception as e:  # noqa: BLE001
            log.warning("cannot copy chapters/metadata (%s)", e)
        self.dropped: list[str] = []  # audio/subtitle streams that could not be added, with why
        for si in info.others:
            try:
                self._add(si.index)
            except Exception as e:  # noqa: BLE001
                self.dropped.append(f"stream #{si.index} ({si.codec}): {_err(e)}")
                log.warning("stream #%d (%s): cannot be written; dropped (%s)", si.index, si.codec, _err(e))
        if self.map:
            self.iter = self.inp.demux(*[self.inp.streams[i] for i in self.map])

    def _add(self, index: int) -> None:
        out = self.out
        src = self.inp.streams[index]
        # The codec's own name (``mp3``), not its decoder's (``mp3float``): containers list codecs.
        name = src.codec_context.codec.canonical_name if src.codec_context else None
        if src.type not in ("audio", "subtitle") or name is None:
            return
        if src.type == "audio" and self.audio.codec == "none":
            return
        forced = AUDIO_CODECS.get(self.audio.codec) if src.type == "audio" else None
        if forced is None and _copyable(name, src.type, out):
            dst = out.add_stream_from_template(src)
            dst.metadata.update(src.metadata)
            dst.disposition = src.disposition
            self.map[index] = (dst, None)
            return
        if src.type != "audio":
            target = _text_sub_target(out)
            if name in _TEXT_SUBS and target in out.supported_codecs:
                from av.subtitles.subtitle import SubtitleSet  # noqa: F401 - needs PyAV >= 16

                dst = out.add_stream(target)
                dst.codec_context.time_base = Fraction(1, 1000)
                dst.codec_context.subtitle_header = src.codec_context.subtitle_header or _ASS_HEADER
                dst.metadata.update(src.metadata)
                dst.disposition = src.disposition
                self.map[index] = (dst, "subtitle")
                log.info("stream #%d: %s subtitles converted to %s for %s", index, name, target, out.format.name)
                return
            log.warning("stream #%d: %s subtitles cannot go into %s; dropped", index, name, out.format.name)
            return
        supported = out.supported_codecs
        if forced is not None:
            target = forced
        elif out.format.name == "webm":
            target = "libopus"
        elif "aac" in supported:
            target = "aac"
        else:
            target = out.default_audio_codec
        rate = src.codec_context.sample_rate or 48000
        if target == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
            rate = 48000
        channels = src.codec_context.channels
        layout = src.codec_context.layout.name if src.codec_context.layout and channels else "stereo"
        if target == "libopus" and channels > 8:
            log.warning("stream #%d: %d audio channels; Opus holds at most 8: downmixed to stereo", index, channels)
            layout = "stereo"
        elif target == "libopus" and layout.endswith("(side)"):
            layout = layout.removesuffix("(side)")  # Opus' surround mapping (family 1) names the back pair
        dst = out.add_stream(target, rate=rate)
        dst.layout = layout
        if self.audio.bitrate and target != "flac":
            dst.bit_rate = self.audio.bitrate
        dst.metadata.update(src.metadata)
        fsize = dst.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format=dst.codec_context.format or "fltp", layout=layout, rate=rate,
                                      frame_size=fsize if not target.startswith("pcm") else None)
        log.info("stream #%d: %s not accepted by the container; transcoding to %s", index, name, target)
        self.map[index] = (dst, resampler)

    def _mux(self, packet: av.Packet) -> None:
        dst, resampler = self.map[packet.stream.index]
        if resampler is None:
            if packet.dts is None and packet.pts is None:
                return
            packet.stream = dst
            try:
                self.out.mux(packet)
            except av.error.FFmpegError as e:
                if getattr(e, "errno", None) == 28:
                    raise _output_error(self.path, e) from e
                self._warn_once(f"skipping {dst.type} packets the muxer refuses ({_err(e)})")
            return
        if resampler == "subtitle":
            self._mux_text_subtitle(packet, dst)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError as e:
            self._warn_once(f"skipping undecodable audio packets ({_err(e)})")
            return
        for frame in frames:
            frame.pts = None
            for rf in resampler.resample(frame):
                self.out.mux(dst.encode(rf))

    def _mux_text_subtitle(self, packet: av.Packet, dst: av.stream.Stream) -> None:
        """Re-encode one text subtitle cue (SubRip/ASS/mov_text/WebVTT) into ``dst``'s text format."""
        from av.subtitles.subtitle import SubtitleSet

        if packet.pts is None:
            return
        try:
            subs = packet.stream.decode2(packet)
            if subs is None or not len(subs):
                return
            text = subs[0].ass
            tb = packet.time_base
            start = int(round(packet.pts * tb * 1000))
            dur = int(round((packet.duration or 0) * tb * 1000)) or max(0, subs.end_display_time - subs.start_display_time)
            q = dst.codec_context.encode_subtitle(SubtitleSet.create(text, 0, dur, pts=0))
            q.stream, q.time_base = dst, Fraction(1, 1000)
            q.pts = q.dts = start
            q.duration = dur
            self.out.mux(q)
        except (av.error.FFmpegError, ValueError, AttributeError, IndexError) as e:
            if getattr(e, "errno", None) == 28:
                raise _output_error(self.path, e) from e
            log.warning("skipping a subtitle cue that cannot be converted (%s)", _err(e))

    def pump(self, until: float | None) -> None:
        """Mux copied packets up to ``until`` seconds (all remaining if ``None``)."""
        while self.iter is not None:
            pkt = self.pending
            self.pending = None
            if pkt is None:
                try:
                    pkt = next(self.iter)
                except StopIteration:
                    self.iter = None
                    return
                except av.error.FFmpegError as e:
                    log.warning("stopping audio/subtitle copy at a demux error (%s)", _err(e))
                    self.iter = None
                    return
            if pkt.size == 0 and pkt.pts is None:
                continue  # flush packet
            t = pkt.pts if pkt.pts is not None else pkt.dts
            if until is not None and t is not None and float(t * pkt.time_base) > until + 0.5:
                self.pending = pkt
                return
            self._mux(pkt)

    def _warn_once(self, what: str) -> None:
        """A damaged track warns once, not once per packet; :meth:`finish` gives the count."""
        if what not in self.skipped:
            log.warning("%s: %s", self.source_name, what)
        self.skipped[what] = self.skipped.get(what, 0) + 1

    def finish(self) -> None:
        """Mux what is left and flush the audio encoders."""
        self.pump(None)
        for what, n in self.skipped.items():
            if n > 1:
                log.warning("%s: %s: %d packets in all", self.source_name, what.split(" (")[0], n)
        for dst, resampler in self.map.values():
            if resampler is not None and resampler != "subtitle":
                try:
                    for rf in resampler.resample(None):
                        self.out.mux(dst.encode(rf))
                    self.out.mux(dst.encode(None))
                except av.error.FFmpegError as e:
                    if getattr(e, "errno", None) == 28:
                        raise _output_error(self.path, e) from e
                    log.warning("audio encoder flush failed (%s)", _err(e))

    def close(self) -> None:
        if self.inp is not None:
            try:
                self.inp.close()
            except Exception:  # noqa: BLE001
                pass
            self.inp = None


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
            self.out = av.open(str(path), "w", format=container_format)
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
        opts: dict[str, str] = {}
        qname, pname = _QUALITY_OPTS.get(codec, (None, None))
        if crf is not None and qname:
            opts[qname] = str(crf)
            if codec.startswith("libvpx"):
                opts["b"] = "0"
        if preset and pname:
            opts.update(_preset_options(codec, str(preset)))
        if codec == "libx265":  # keep stderr to upvid's own lines
            opts["x265-params"] = "log-level=error"
        if codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")
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
        #: ``(colorspace, full_range)`` of :class:`~upvid.frames.Yuv420` pictures :meth:`write`
        #: takes as they are (8-bit 4:2:0 output of even size), or ``None``.
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
            if (rgb.colorspace, rgb.full_range) != self.yuv_target:
                raise EncodeError(f"4:2:0 planes ({rgb.colorspace}, full range {rgb.full_range}) do not match "
                                  f"the encoder ({self.video.pix_fmt}, {self.yuv_target})")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb.planes), format=self.video.pix_fmt)
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


def plan_decode_times(segments: Sequence[Path]) -> tuple[Fraction, list[list[int]], int]:
    """Presentation times of every video packet of ``segments`` and one decode-time shift for the join.

    Demuxers disagree on decode timestamps after a stream copy (Matroska gives none for the
    first packets of a GOP, MP4 starts at a negative edit-list offset, AVI counts frames), so the
    join derives them from the presentation times alone: packet ``k`` (decode order, across all
    segments) gets ``dts_k = sorted(pts)_k - delay``, where ``delay`` is the largest B-frame
    reorder lead of any segment. That is strictly increasing across segment borders and never
    after its own pts, whatever the segments' containers wrote.

    Args:
        segments: video files with one video stream, the same time base, in presentation order.

    Returns:
        ``(time_base, pts per segment in decode order, delay)``; pts in ``time_base`` units.

    Raises:
        EncodeError: a segment with no video packet, no timestamp, or another time base.
    """
    tb: Fraction | None = None
    all_pts: list[list[int]] = []
    delay = 0
    previous_max: int | None = None
    for seg in segments:
        with av.open(str(seg)) as c:
            vs = c.streams.video[0]
            if tb is None:
                tb = vs.time_base
            elif vs.time_base != tb:
                raise EncodeError(f"{seg.name}: time base {vs.time_base} differs from the first segment's {tb}")
            pts = []
            for p in c.demux(vs):
                if p.size == 0:
                    continue
                t = p.pts if p.pts is not None else p.dts
                if t is None:
                    raise EncodeError(f"{seg.name}: a video packet without a timestamp")
                pts.append(int(t))
        if not pts:
            raise EncodeError(f"{seg.name}: no video packet")
        order = sorted(pts)
        if previous_max is not None and order[0] <= previous_max:
            raise EncodeError(f"{seg.name}: starts at {order[0]}, not after the previous segment ({previous_max})")
        previous_max = order[-1]
        delay = max(delay, max(s - p for s, p in zip(order, pts)))
        all_pts.append(pts)
    assert tb is not None
    return tb, all_pts, delay


def check_audio(info: VideoInfo, out: Path, audio: AudioOptions) -> None:
    """Decide, before any frame is computed, that the input's audio can go into OUT's container
    as asked: the streams are added to a scratch file of OUT's suffix and its header written.

    Raises:
        UsageError: an audio track the container refuses even transcoded, or ``--audio-codec``
            naming a codec the container cannot hold; the message offers ``--audio-codec`` and
            ``--no-audio``.
    """
    import tempfile

    from upvid.errors import UsageError

    if audio.codec == "none" or not any(si.type == "audio" for si in info.others) or info.path.is_dir():
        return
    with tempfile.TemporaryDirectory(prefix="upvid-audio-") as tmp:
        scratch = Path(tmp) / f"probe{out.suffix.lower()}"
        try:
            c = av.open(str(scratch), "w")
        except (av.error.FFmpegError, ValueError, OSError):
            return  # the real open reports it
        extras: _Extras | None = None
        problem = None
        try:
            quiet = logging.getLogger("upvid.io.writer")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # the scratch file's own "dropped" warnings are replaced by one error
            try:
                extras = _Extras(c, info, scratch, audio)
            finally:
                quiet.setLevel(level)
            lost = [d for d in extras.dropped if "subtitle" not in d]
            if lost:
                problem = lost[0]
            elif extras.map:
                v = c.add_stream("mpeg4" if "mpeg4" in c.supported_codecs else c.default_video_codec, rate=25)
                v.width, v.height, v.pix_fmt = 16, 16, "yuv420p"
                c.start_encoding()
        except (av.error.FFmpegError, ValueError) as e:
            problem = _err(e)
        finally:
            if extras is not None:
                extras.close()
            _close_quietly(c)
    if problem:
        raise UsageError(f"{out.name}: the audio cannot go into {out.suffix or 'this'} container as asked ({problem}); "
                         "use --audio-codec aac|opus|flac, another container (.mkv takes almost any), or --no-audio")


def assemble(segments: Sequence[Path], path: Path, info: VideoInfo, *, copy_streams: bool = True,
             container_format: str | None = None, recorded_pts: Sequence[Sequence[int]] | None = None,
             audio: AudioOptions | None = None) -> int:
    """Copy the video packets of ``segments`` (in order, no re-encoding) into ``path``, with the
    input's audio/subtitle streams, chapters and metadata.

    The segments carry the input's own timestamps, so no offset is added; decode timestamps
    come from :func:`plan_decode_times` (strictly increasing across joins in every container).

    Args:
        segments: video-only files written by :class:`VideoWriter` (``copy_streams=False``),
            same encoder settings, in presentation order.
        path: the output (a temporary name; the caller renames it).
        info: the probed input.
        copy_streams: add the input's other streams and chapters.
        audio: what to do with the audio tracks (default: copy, else transcode).
        recorded_pts: per segment, the pts (``info.time_base``) of each frame as
            :attr:`VideoWriter.written_pts` recorded it; required for :data:`SEQUENTIAL_MUXERS`
            segments (they were written without B-frames, one packet per frame), whose demuxed
            times restart in every segment or are missing.

    Returns:
        Video packets written.

    Raises:
        OutputError: cannot write (disk full...); EncodeError: the muxer refused the video, or a
        segment is unreadable or holds another number of frames than recorded.
    """
    if not segments:
        raise EncodeError("no video segment to assemble")
    if recorded_pts is not None:
        tb, seg_pts, delay = info.time_base, [list(map(int, r)) for r in recorded_pts], 0
        if len(seg_pts) != len(segments):
            raise EncodeError(f"{len(segments)} segments but {len(seg_pts)} recorded frame-time lists")
    else:
        try:
            tb, seg_pts, delay = plan_decode_times(segments)
        except av.error.FFmpegError as e:
            raise EncodeError(f"reading the segments: {_err(e)}") from e
    sorted_all = sorted(t for pts in seg_pts for t in pts)
    try:
        out = av.open(str(path), "w", format=container_format)
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise OutputError(f"{path}: cannot create ({_err(e)})") from e
    extras: _Extras | None = None
    n = 0
    try:
        with av.open(str(segments[0])) as first:
            src = first.streams.video[0]
            dst = out.add_stream_from_template(src, opaque=True)  # opaque: the decoder may have no encoder twin
            dst.time_base = src.time_base
            if info.rotation:
                try:
                    dst.set_display_rotation(info.rotation)
                except Exception as e:  # noqa: BLE001
                    log.warning("cannot keep rotation %s: %s", info.rotation, e)
        if copy_streams:
            extras = _Extras(out, info, path, audio)
        for seg, pts in zip(segments, seg_pts):
            with av.open(str(seg)) as c:
                vs = c.streams.video[0]
                k = 0
                for p in c.demux(vs):
                    if p.size == 0:
                        continue
                    if k >= len(pts):
                        raise EncodeError(f"{seg.name}: holds more frames than the {len(pts)} recorded")
                    p.pts = pts[k]
                    p.dts = sorted_all[n] - delay
                    p.time_base = tb
                    k += 1
                    p.stream = dst
                    out.mux(p)
                    n += 1
                    if extras is not None:
                        extras.pump(float(p.pts * tb))
                if k != len(pts):
                    raise EncodeError(f"{seg.name}: holds {k} frames, {len(pts)} were written")
        if extras is not None:
            extras.finish()
        out.close()
    except av.error.FFmpegError as e:
        if extras is not None:
            extras.close()
        _close_quietly(out)
        if getattr(e, "errno", None) == 28:
            raise OutputError(f"{path}: no space left on device") from e
        raise EncodeError(f"muxing {path.name}: {_err(e)}") from e
    except OSError as e:
        if extras is not None:
            extras.close()
        _close_quietly(out)
        raise _output_error(path, e) from e
    except BaseException:
        if extras is not None:
            extras.close()
        _close_quietly(out)
        raise
    if extras is not None:
        extras.close()
    return n


def _close_quietly(c) -> None:
    try:
        c.close()
    except Exception:  # noqa: BLE001
        pass


def unique_temp_path(final: Path) -> Path:
    """A temporary name next to ``final`` keeping its suffix (so the muxer is chosen the same way)."""
    return final.with_name(f".{final.stem}.upvid-{os.getpid()}.partial{final.suffix}")
