"""Muxing: the input's audio/subtitle streams and chapters into an output, and the join of
closed video segments into the final file, without re-encoding (PyAV).

Audio and subtitle packets are copied without re-encoding when the output container accepts
their codec; audio it does not accept is transcoded (AAC for mp4/mov/mkv/avi, Opus for webm, or
what ``--audio-codec`` asks); subtitles it does not accept are converted between text formats
or dropped with a warning. Copied packets are interleaved with the video as it is written (a
second demuxer on the input follows the video clock), so memory stays bounded. Chapters and
the container's title/language metadata are copied too. :func:`check_audio` decides, before any
frame is computed, that the audio can go into OUT as asked. :func:`assemble` joins segments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from upvid.errors import EncodeError, OutputError
from upvid.io.held import HeldInput
from upvid.io.probe import VideoInfo, media_url, open_input

log = logging.getLogger(__name__)

#: Audio codecs that players accept in MP4 (FFmpeg can mux more, e.g. Vorbis, that few players read).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"}

#: Muxers keeping subtitles upvid may copy, by codec (FFmpeg's own lists are broader than players').
_MOV_LIKE = {"mp4", "mov"}


#: The layout given to ``N`` channels that carry none (FFmpeg's usual order for the count).
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


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
                 audio: AudioOptions | None = None, window: tuple[float, float] | None = None,
                 held: HeldInput | None = None) -> None:
        self.out = out
        self.path = path
        self.audio = audio or AudioOptions()
        # A preview (--start/--frames): only what plays in [t0, t1) input seconds, moved to start at 0.
        self.window = window
        self.skipped: dict[str, int] = {}  # warnings said once, then counted
        self.source_name = info.path.name
        #: ``(stream type, reason)`` of each audio/subtitle stream that could not be added.
        self.dropped: list[tuple[str, str]] = []
        self.inp: av.container.InputContainer | None = None
        self.map: dict[int, tuple[av.stream.Stream, object]] = {}
        self.pending: av.Packet | None = None
        self.iter = None
        if info.container == "image2" or info.path.is_dir():
            return
        try:
            self.inp = held.open() if held is not None else open_input(info.path)
            if held is not None and held.replaced():
                log.warning("%s was replaced or deleted while the job ran; its audio, subtitles and chapters "
                            "are taken from the file the frames were read from", info.path)
        except Exception as e:  # noqa: BLE001 - the video was readable; extras are best effort
            log.warning("cannot reopen %s for its audio/subtitles (%s)", info.path, e)
            return
        try:
            chapters = self.inp.chapters()
            if chapters and window is not None:
                chapters = _clip_chapters(chapters, *window)
            if chapters:
                out.set_chapters(chapters)
            for k, v in self.inp.metadata.items():
                if k.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands", "creation_time"):
                    out.metadata[k] = v
        except Exception as e:  # noqa: BLE001
            log.warning("cannot copy chapters/metadata (%s)", e)
        for si in info.others:
            try:
                self._add(si.index)
            except Exception as e:  # noqa: BLE001
                self.dropped.append((si.type, f"stream #{si.index} ({si.codec}): {_err(e)}"))
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
        if layout.endswith(" channels"):  # no channel order recorded (PCM in MKV/WAV): the usual one for the count
            layout = DEFAULT_LAYOUTS.get(channels, "stereo")
            log.info("stream #%d: %d channels without a layout; written as %s", index, channels, layout)
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

    def _shift(self, packet: av.Packet) -> bool:
        """Move ``packet`` into the preview window's time (False: it plays outside the window)."""
        t = packet.pts if packet.pts is not None else packet.dts
        if t is None or packet.time_base is None:
            return False
        t0, t1 = self.window
        start = float(t * packet.time_base)
        if start < t0 - 1e-6 or start >= t1 - 1e-6:
            return False
        off = int(round(t0 / packet.time_base))
        if packet.pts is not None:
            packet.pts -= off
        if packet.dts is not None:
            packet.dts -= off
        return True

    def _mux(self, packet: av.Packet) -> None:
        dst, resampler = self.map[packet.stream.index]
        if self.window is not None and not self._shift(packet):
            return
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
            t_out = None if t is None else float(t * pkt.time_base) - (self.window[0] if self.window else 0.0)
            if until is not None and t_out is not None and t_out > until + 0.5:
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
        with av.open(media_url(seg)) as c:
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
            c = av.open(media_url(scratch), "w")
        except (av.error.FFmpegError, ValueError, OSError):
            return  # the real open reports it
        extras: _Extras | None = None
        problem = None
        try:
            level = log.level
            log.setLevel(logging.ERROR)  # the scratch file's own "dropped" warnings are replaced by one error
            try:
                extras = _Extras(c, info, scratch, audio)
            finally:
                log.setLevel(level)
            lost = [why for kind, why in extras.dropped if kind == "audio"]
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


def _clip_chapters(chapters: list[dict], t0: float, t1: float) -> list[dict]:
    """Chapters cut to the preview window ``[t0, t1)`` seconds and moved to start at 0."""
    out = []
    for ch in chapters:
        tb = ch["time_base"]
        start, end = float(ch["start"] * tb), float(ch["end"] * tb)
        if end <= t0 or start >= t1:
            continue
        out.append({**ch, "start": int(round((max(start, t0) - t0) / tb)), "end": int(round((min(end, t1) - t0) / tb))})
    return out


def assemble(segments: Sequence[Path], path: Path, info: VideoInfo, *, copy_streams: bool = True,
             container_format: str | None = None, recorded_pts: Sequence[Sequence[int]] | None = None,
             audio: AudioOptions | None = None, window: tuple[float, float] | None = None,
             held: HeldInput | None = None) -> int:
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
        window: a preview's ``(t0, t1)`` in input seconds: only the audio/subtitle packets that
            start in it are kept, moved back by ``t0`` (the segments' video already starts at 0).
        held: the input as opened when the job started: the other streams are read from it, not
            from ``info.path`` (which may name another file by now).
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
        out = av.open(media_url(path), "w", format=container_format)
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise OutputError(f"{path}: cannot create ({_err(e)})") from e
    extras: _Extras | None = None
    n = 0
    try:
        with av.open(media_url(segments[0])) as first:
            src = first.streams.video[0]
            if src.codec_context.name == "rawvideo":  # an encoder's stream: it sets the fourcc Matroska needs
                dst = out.add_stream("rawvideo", rate=info.fps or 25)
                dst.width, dst.height = src.codec_context.width, src.codec_context.height
                dst.pix_fmt = src.codec_context.pix_fmt
            else:
                dst = out.add_stream_from_template(src, opaque=True)  # opaque: the decoder may have no encoder twin
            dst.time_base = src.time_base
            if info.rotation:
                try:
                    dst.set_display_rotation(info.rotation)
                except Exception as e:  # noqa: BLE001
                    log.warning("cannot keep rotation %s: %s", info.rotation, e)
        if copy_streams:
            extras = _Extras(out, info, path, audio, window, held)
        for seg, pts in zip(segments, seg_pts):
            with av.open(media_url(seg)) as c:
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


def remove_stale_temps(final: Path) -> list[Path]:
    """Delete the :func:`unique_temp_path` files of ``final`` whose upvid process no longer runs
    (left by a kill during the join); those of live processes are kept.

    Returns:
        The files removed.
    """
    import glob

    prefix, suffix = f".{final.stem}.upvid-", f".partial{final.suffix}"
    removed = []
    for p in final.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        pid = p.name[len(prefix):len(p.name) - len(suffix)]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
