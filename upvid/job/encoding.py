"""The encoding a job writes, and the colour path its pictures take: one policy for the file,
stream and distributed jobs.

- :func:`choose_encoding`: ``--codec``/``--encoder``/``--pix-fmt``/``--bit-depth`` -> an
  :class:`Encoding` (checked before any frame is decoded).
- :func:`colour_path`: whether the decoder hands the engine 4:2:0 planes and the engine hands
  the encoder 4:2:0 planes (:mod:`upvid.engine.colour`, which keeps superwhite and other
  out-of-gamut values), or RGB goes through libswscale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from upvid.errors import UsageError
from upvid.io.codecs import check_encoder_options, choose_pix_fmt, default_codec, yuv420_target
from upvid.io.external import default_pix_fmt as external_pix_fmt
from upvid.io.external import ffmpeg_binary
from upvid.io.probe import VideoInfo, bit_depth_of
from upvid.job.options import JobOptions


@dataclass(frozen=True)
class Encoding:
    """What a video OUT is encoded with.

    Attributes:
        codec: the encoder (PyAV's, or the external ffmpeg's with ``--encoder ffmpeg``).
        pix_fmt: its pixel format.
        deep: pictures travel as more than 8 bits (the source's or the output's depth).
    """

    codec: str
    pix_fmt: str
    deep: bool


def choose_encoding(info: VideoInfo, out: str | Path, opts: JobOptions, auto_codec: str | None = None,
                    what: str = "a video") -> Encoding:
    """Resolve the encoder settings for ``out`` from ``opts`` and the source ``info``.

    Args:
        info: the probed input.
        out: the output's path (its suffix picks ``--codec auto``'s encoder).
        opts: the job's options.
        auto_codec: what ``--codec auto`` means instead of the suffix's default (a pipe's format).
        what: the output's kind, for the ``--bit-depth 16`` message.

    Raises:
        UsageError: ``--bit-depth 16`` (PNG folders only), a bad ``--crf``/``--preset``.
        EncodeError: an unknown encoder or a pixel format it refuses; no ffmpeg binary.
    """
    if opts.bit_depth == 16:
        raise UsageError(f"{out}: --bit-depth 16 is for PNG-folder outputs; {what} takes 8 or 10")
    if opts.codec != "auto":
        codec = opts.codec
    else:
        codec = auto_codec or default_codec(Path(out).suffix, info.codec)
    if opts.encoder == "ffmpeg":  # the binary's encoders, not PyAV's: checked when it starts
        ffmpeg_binary()
        pix_fmt = external_pix_fmt(opts.pix_fmt, opts.bit_depth, info.bit_depth)
    else:
        check_encoder_options(codec, opts.crf, opts.preset)
        pix_fmt = choose_pix_fmt(codec, opts.pix_fmt, opts.bit_depth, info.bit_depth)
    return Encoding(codec, pix_fmt, info.bit_depth > 8 or bit_depth_of(pix_fmt) > 8)


def colour_path(info: VideoInfo, size: tuple[int, int], pix_fmt: str | None, opts: JobOptions, *,
                image_in: bool = False) -> tuple[bool, tuple[int, bool, int] | None]:
    """``(planar_in, yuv_out)``: how pictures cross between the codecs and the engine.

    Args:
        info: the probed input.
        size: the output's ``(width, height)``.
        pix_fmt: the encoder's format; ``None`` for a PNG-folder OUT (RGB out).
        opts: the job's options (``colour_in_engine=False`` forces libswscale's RGB both ways).
        image_in: the input is a folder of images (RGB in).

    Returns:
        ``planar_in``: ask the reader for 4:2:0 planes (it hands them out for eligible streams,
        :func:`upvid.io.reader.yuv_eligible`); ``yuv_out``: the engine's
        :attr:`~upvid.engine.EngineConfig.yuv_out`, or ``None`` for RGB frames.
    """
    if not opts.colour_in_engine:
        return False, None
    yuv_out = None
    if pix_fmt is not None and opts.encoder == "pyav":
        yuv_out = yuv420_target(info, size[0], size[1], pix_fmt)
    return not image_in, yuv_out
