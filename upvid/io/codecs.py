"""Encoder policy: which encoder, pixel format, size, preset and CRF an output gets (PyAV/FFmpeg).

- ``--codec auto`` (:func:`default_codec`): by OUT's suffix (WebM: VP9, Ogg: VP8), else the
  source's family where the container holds it (HEVC -> libx265, AV1 -> libsvtav1), else x264.
- ``--pix-fmt auto`` / ``--bit-depth`` (:func:`choose_pix_fmt`), the sizes a format can store
  (:func:`size_multiple`) and FFmpeg's largest frame (:func:`check_frame_size`).
- ``--preset`` names mapped per encoder (:func:`preset_options`) and checked with ``--crf``
  before any work (:func:`check_encoder_options`).
- Muxers without per-frame times (:data:`SEQUENTIAL_MUXERS`) and colour tags for the encoder.
"""

from __future__ import annotations

import logging

import av

from upvid.errors import EncodeError
from upvid.frames import YUV_MATRICES
from upvid.io.probe import VideoInfo

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


#: Encoder formats that take :class:`~upvid.frames.Yuv420` planes as they are, and their bit depth.
YUV420_OUTPUTS = {"yuv420p": 8, "yuvj420p": 8, "yuv420p10le": 10}


def yuv420_target(info: VideoInfo, width: int, height: int, pix_fmt: str) -> tuple[int, bool, int] | None:
    """``(colorspace, full_range, bits)`` in which 4:2:0 planes made by the engine can go straight
    to an encoder of ``pix_fmt`` at ``width x height``, or ``None`` (RGB through libswscale then).

    Only for 8- or 10-bit 4:2:0 output of even size in a matrix :mod:`upvid.engine.colour`
    knows; the matrix is the input's, as :class:`VideoWriter` tags and converts RGB.
    """
    if pix_fmt not in YUV420_OUTPUTS or width % 2 or height % 2 or info.colorspace not in YUV_MATRICES:
        return None
    return info.colorspace, output_color_range(info, pix_fmt) == 2, YUV420_OUTPUTS[pix_fmt]



#: Video file suffixes upvid writes as a video (anything else, or no suffix, is an image folder).
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".nut", ".ts", ".mts"}

#: Encoder used when ``codec="auto"``: by output suffix (default libx264).
#: ``.avi``: MPEG-4 Part 2 (Xvid-compatible), as FFmpeg's own default: FFmpeg's AVI reader shows
#: H.264 in AVI one or two frames late (its parser guesses a reorder delay), audio then leads.
_AUTO_CODEC = {".webm": "libvpx-vp9", ".ogv": "libvpx", ".avi": "mpeg4"}

#: Pixel formats with more than 8 bits per component, by encoder (``--bit-depth 10``).
_DEEP_FMT = {"libx264": "yuv420p10le", "libx265": "yuv420p10le", "libsvtav1": "yuv420p10le",
             "libvpx-vp9": "yuv420p10le", "libaom-av1": "yuv420p10le", "ffv1": "yuv420p10le"}



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
        raise EncodeError(f"unknown encoder {codec!r} (see `ffmpeg -encoders`; e.g. libx264, libx265, libsvtav1, "
                          "libvpx-vp9)") from e
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


def preset_options(codec: str, preset: str) -> dict[str, str]:
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
_CRF_RANGE = {"mpeg4": (0, 51), "libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (0, 63), "libaom-av1": (0, 63),
              "libvpx-vp9": (0, 63), "libvpx": (4, 63)}


def mpeg4_quantiser(crf: int) -> int:
    """MPEG-4 Part 2 has no CRF: ``--crf`` (x264's 0..51 scale) becomes a constant quantiser,
    ``max(2, round(crf / 6))`` (18 -> 3, FFmpeg's ``-q:v 3``, visually lossless)."""
    return max(2, round(crf / 6))


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
