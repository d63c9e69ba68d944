"""HDR10 static metadata: read from a decoded frame's side data, written back as encoder parameters.

SMPTE ST 2086 mastering-display colour volume (primaries, white point, luminance range) and the
CTA-861.3 content light levels (MaxCLL, MaxFALL) travel as frame side data in FFmpeg
(``AVMasteringDisplayMetadata``, ``AVContentLightMetadata``); x265 (``master-display``,
``max-cll``) and SVT-AV1 (``mastering-display``, ``content-light``) take them as parameters. The
colour tags themselves (BT.2020 primaries, PQ/HLG transfer, BT.2020 matrix) are copied by the
writer like any other colour tags.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import av

#: FFmpeg ``AVColorTransferCharacteristic`` values of HDR transfers.
PQ, HLG = 16, 18
#: Encoders that can carry HDR10 static metadata, and their parameter option.
HDR_ENCODERS = {"libx265": "x265-params", "libsvtav1": "svtav1-params"}


@dataclass(frozen=True)
class HdrMetadata:
    """HDR10 static metadata (``None`` fields: not present in the source).

    Attributes:
        primaries: CIE 1931 xy of the mastering display's red, green and blue primaries.
        white: its white point xy.
        luminance: ``(min, max)`` in cd/m^2.
        max_cll, max_fall: content light levels in cd/m^2.
    """

    primaries: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None = None
    white: tuple[float, float] | None = None
    luminance: tuple[float, float] | None = None
    max_cll: int | None = None
    max_fall: int | None = None

    def x265_params(self) -> list[str]:
        """x265 ``master-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`` (0.00002 / 0.0001 cd/m^2 units)
        and ``max-cll=CLL,FALL``."""
        out = []
        if self.primaries and self.white and self.luminance:
            (r, g, b), w = self.primaries, self.white

            def xy(p: tuple[float, float]) -> str:
                return f"({round(p[0] / 0.00002)},{round(p[1] / 0.00002)})"

            lo, hi = self.luminance
            out.append(f"master-display=G{xy(g)}B{xy(b)}R{xy(r)}WP{xy(w)}L({round(hi * 10000)},{round(lo * 10000)})")
        if self.max_cll is not None:
            out.append(f"max-cll={self.max_cll},{self.max_fall or 0}")
        if out:
            out.append("hdr10=1")
        return out

    def svtav1_params(self) -> list[str]:
        """SVT-AV1 ``mastering-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`` (decimal) and ``content-light``."""
        out = []
        if self.primaries and self.white and self.luminance:
            (r, g, b), w = self.primaries, self.white

            def xy(p: tuple[float, float]) -> str:
                return f"({p[0]:.4f},{p[1]:.4f})"

            lo, hi = self.luminance
            out.append(f"mastering-display=G{xy(g)}B{xy(b)}R{xy(r)}WP{xy(w)}L({hi:.4f},{lo:.4f})")
        if self.max_cll is not None:
            out.append(f"content-light={self.max_cll},{self.max_fall or 0}")
        return out


def _q(num: int, den: int) -> float:
    return num / den if den else 0.0


def from_frame(frame: av.VideoFrame) -> HdrMetadata | None:
    """The HDR10 metadata a decoded frame carries, or ``None``."""
    primaries = white = luminance = None
    cll = fall = None
    for sd in frame.side_data:
        name = getattr(sd.type, "name", str(sd.type))
        data = bytes(memoryview(sd))
        if name == "MASTERING_DISPLAY_METADATA" and len(data) >= 88:
            v = struct.unpack_from("<20i2i", data)
            if v[20]:  # has_primaries
                primaries = tuple((_q(v[4 * k], v[4 * k + 1]), _q(v[4 * k + 2], v[4 * k + 3])) for k in range(3))
                white = (_q(v[12], v[13]), _q(v[14], v[15]))
            if v[21]:  # has_luminance
                luminance = (_q(v[16], v[17]), _q(v[18], v[19]))
        elif name == "CONTENT_LIGHT_LEVEL" and len(data) >= 8:
            cll, fall = struct.unpack_from("<2I", data)
    if primaries is None and luminance is None and cll is None:
        return None
    return HdrMetadata(primaries, white, luminance, cll, fall)  # type: ignore[arg-type]


def encoder_params(meta: HdrMetadata | None, codec: str) -> tuple[str, list[str]] | None:
    """``(option name, parameters)`` that carry ``meta`` into ``codec``, or ``None`` when it cannot."""
    if meta is None or codec not in HDR_ENCODERS:
        return None
    params = meta.x265_params() if codec == "libx265" else meta.svtav1_params()
    return (HDR_ENCODERS[codec], params) if params else None


def warn_hdr(info, codec: str | None, out_bit_depth: int, log) -> None:
    """Say once per job what happens to an HDR source: the model sees PQ/HLG code values, and the
    HDR10 metadata is kept only by a 10-bit x265 or SVT-AV1 output."""
    if info.color_trc not in (PQ, HLG):
        return
    curve = "PQ (SMPTE ST 2084)" if info.color_trc == PQ else "HLG"
    log.warning("%s is HDR (%s): the model sees %s code values, not the SDR gamma it was trained on "
                "(BI/BD-trained models); expect some loss of fidelity in highlights", info.path.name, curve, curve)
    if codec is None:
        return
    if codec not in HDR_ENCODERS or out_bit_depth < 10:
        log.warning("HDR10 needs a 10-bit libx265 or libsvtav1 output to keep its metadata (this is %s, %d bits); "
                    "use --codec libx265 --bit-depth 10", codec, out_bit_depth)
