"""Small real clips made with PyAV for the I/O tests: VFR, rotated, 10-bit, odd sizes, colour tags,
SAR, subtitles, several audio tracks, chapters; and helpers to inspect what upvid wrote."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.subtitles.subtitle import SubtitleSet

ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    b"MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,"
    b"10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def pattern(i: int, w: int, h: int, deep: bool = False) -> np.ndarray:
    """A moving gradient + square test frame, ``(h, w, 3)`` uint8 (or uint16 full scale)."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(1, w - 1) + 7 * i) % 256
    g = (y * 255 // max(1, h - 1)).astype(np.int64)
    b = ((x // 4 + y // 4 + i) % 2) * 200 + 20
    img = np.stack([r, g, np.broadcast_to(b, r.shape)], -1).astype(np.float64)
    if deep:
        return (img * 257 + (x[..., None] % 4) * 16).clip(0, 65535).astype(np.uint16)
    return img.astype(np.uint8)


def make_clip(
    path: Path,
    *,
    n: int = 8,
    size: tuple[int, int] = (32, 24),
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 1000),
    rotation: int = 0,
    colour: dict | None = None,
    sar: Fraction | None = None,
    subtitles: list[str] | None = None,
    sub_codec: str | None = None,
    audio: list[str] | tuple[str, ...] = ("aac",),
    chapters: bool = False,
) -> Path:
    """Encode a test clip. ``pts`` in ``time_base`` units gives variable frame rate; ``audio`` lists one
    codec per audio track (each with a ``language`` tag); ``subtitles`` is the text of one cue per
    100 ms, in ``sub_codec`` (mov_text in mp4, subrip/ass in mkv)."""
    w, h = size
    if pts is None:
        pts = [int(round(i / fps / time_base)) for i in range(n)]
    n = len(pts)
    deep = "10" in pix_fmt or "12" in pix_fmt
    dur = float(pts[-1] * time_base) + 1 / fps
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        v.time_base = time_base
        v.codec_context.time_base = time_base
        if codec in ("libx264", "libx265"):
            v.options = {"preset": "ultrafast", "crf": "10"} if codec == "libx264" else {"preset": "ultrafast", "crf": "10", "x265-params": "log-level=error"}
        cc = v.codec_context
        for k, val in (colour or {}).items():
            setattr(cc, k, val)
        if sar is not None:
            cc.sample_aspect_ratio = sar
        if rotation:
            v.set_display_rotation(rotation)
        auds = []
        for k, a in enumerate(audio):
            s = c.add_stream(a, rate=48000 if a != "pcm_s16le" else 16000)
            s.layout = "stereo" if k == 0 else "mono"
            s.metadata["language"] = ["eng", "fra", "deu"][k % 3]
            auds.append(s)
        sub = None
        if subtitles:
            sub = c.add_stream(sub_codec or ("mov_text" if str(path).endswith((".mp4", ".mov")) else "subrip"))
            sub.codec_context.time_base = Fraction(1, 1000)
            sub.codec_context.subtitle_header = ASS_HEADER
            sub.metadata["language"] = "eng"
        if chapters:
            end = int(dur * 1000)
            c.set_chapters([
                {"id": 1, "start": 0, "end": end // 2, "time_base": Fraction(1, 1000), "metadata": {"title": "first"}},
                {"id": 2, "start": end // 2, "end": end, "time_base": Fraction(1, 1000), "metadata": {"title": "second"}},
            ])
        for i, p in enumerate(pts):
            img = pattern(i, w, h, deep)
            f = av.VideoFrame.from_ndarray(img, format="rgb48le" if deep else "rgb24")
            f = f.reformat(format=pix_fmt)
            f.pts, f.time_base = p, time_base
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        for k, s in enumerate(auds):
            rate = s.codec_context.sample_rate
            fs = s.codec_context.frame_size or 1024
            total = int(dur * rate)
            ch = 2 if k == 0 else 1
            fmt = s.codec_context.format.name if s.codec_context.format else "fltp"
            for start in range(0, total, fs):
                t = np.arange(start, min(start + fs, total)) / rate
                wave = 0.2 * np.sin(2 * np.pi * (440 + 110 * k) * t)
                if fmt == "s16":
                    data = (np.repeat(wave[None], ch, 0).T.reshape(1, -1) * 32767).astype(np.int16)
                    af = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo" if ch == 2 else "mono")
                else:
                    data = np.repeat(wave[None], ch, 0).astype(np.float32)
                    af = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo" if ch == 2 else "mono")
                af.sample_rate, af.pts = rate, start
                c.mux(s.encode(af))
            c.mux(s.encode(None))
        if sub is not None:
            for i, text in enumerate(subtitles):
                ss = SubtitleSet.create(f"{i},0,Default,,0,0,0,,{text}".encode(), 0, 100, pts=0)
                pkt = sub.codec_context.encode_subtitle(ss)
                pkt.stream, pkt.time_base = sub, Fraction(1, 1000)
                pkt.pts = pkt.dts = i * 100
                pkt.duration = 100
                c.mux(pkt)
    return Path(path)


def describe(path: Path) -> dict:
    """What a file holds: video size/pts/rotation/colour/SAR, audio and subtitle tracks, chapters."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        frames = list(c.decode(v))
        info = {
            "format": c.format.name,
            "codec": cc.name,
            "size": (frames[0].width, frames[0].height) if frames else (cc.width, cc.height),
            "frames": len(frames),
            "pts_s": [round(float(f.pts * f.time_base), 3) for f in frames],
            "rotation": int(frames[0].rotation or 0) if frames else 0,
            "pix_fmt": cc.pix_fmt,
            "colour": (int(cc.color_primaries), int(cc.color_trc), int(cc.colorspace), int(cc.color_range)),
            "sar": Fraction(v.sample_aspect_ratio or cc.sample_aspect_ratio or 1),
            "chapters": [(round(float(ch["start"] * ch["time_base"]), 2), ch["metadata"].get("title"))
                         for ch in c.chapters()],
        }
        frames_rgb = [f.to_ndarray(format="rgb24") for f in frames[:2]]
    with av.open(str(path)) as c:
        info["audio"] = [(s.codec_context.name, s.codec_context.channels, s.metadata.get("language")) for s in c.streams.audio]
        info["subtitle_codecs"] = [s.codec_context.name for s in c.streams.subtitles]
        info["subtitles"] = []
        if c.streams.subtitles:
            for p in c.demux(c.streams.subtitles[0]):
                if p.size:
                    info["subtitles"].append((round(float(p.pts * p.time_base), 2), bytes(p)))
    info["first_rgb"] = frames_rgb
    return info


def engine_rgb(frame: av.VideoFrame):
    """``(1, 3, H, W)`` float32 RGB of a decoded 8-bit 4:2:0 ``frame`` as upvid's engine sees it:
    its planes converted by :func:`upvid.engine.colour.yuv420_to_rgb` (linear chroma, exact
    matrix, out-of-gamut values kept), not libswscale's clipped, truncated RGB."""
    import torch

    from upvid.engine.colour import yuv420_to_rgb

    full = frame.color_range == 2 or frame.format.name.startswith("yuvj")
    return yuv420_to_rgb(torch.from_numpy(frame.to_ndarray())[None], int(frame.colorspace), full)


def grey_clip(path: Path, *, frames: int, size: tuple[int, int], level_step: int, audio_codec: str,
              layout: str, audio_seconds: float, rate: int = 48000) -> Path:
    """An H.264 clip of flat grey frames (frame ``i`` at level ``i * level_step``, 25 fps) with one
    audio track of ``audio_codec`` in ``layout``, ``audio_seconds`` long (seeded low noise): the
    clips for audio cases (6-channel PCM, 5.1 into WebM, audio outlasting the video)."""
    w, h = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream(audio_codec, rate=rate)
        a.layout = layout
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), i * level_step, np.uint8), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        fmt = a.codec_context.format.name
        ch = a.codec_context.channels
        fs = a.codec_context.frame_size or 960
        dtype = {"s16": np.int16, "s32": np.int32}.get(fmt.rstrip("p"), np.float32)
        scale = 3000 if dtype != np.float32 else 0.05
        for start in range(0, int(audio_seconds * rate), fs):
            noise = (rng.standard_normal((ch, fs)) * scale).astype(dtype)
            data = noise if fmt.endswith("p") else noise.T.reshape(1, -1)  # planar, or interleaved
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
            af.sample_rate, af.pts = rate, start
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    return Path(path)
