"""The picture types that travel between :mod:`upvid.io` and :mod:`upvid.engine`.

Frames are ``(H, W, 3)`` RGB numpy arrays (``uint8``, or ``uint16`` full scale for deep
sources), or :class:`Yuv420`: the decoder's own 8- or 10-bit 4:2:0 planes, which the engine
converts to RGB itself (and back, for the encoder) without clipping out-of-gamut values, see
:mod:`upvid.engine.colour`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Yuv420:
    """One 4:2:0 picture in PyAV's ``yuv420p`` / ``yuv420p10le`` ndarray layout.

    Attributes:
        planes: ``(H * 3 // 2, W)`` uint8 (8 bits) or uint16/int16 (10 bits): the Y plane, then
            the U and V planes (each ``H/2 x W/2``) packed into ``W``-wide rows. ``H`` and ``W``
            are even.
        colorspace: ``AVColorSpace`` code of the matrix (1: BT.709, 5/6: BT.601, 9: BT.2020,
            2: unspecified, read as BT.601 like libswscale).
        full_range: ``True``: JPEG/pc range (0-255); ``False``: MPEG/tv range (16-235/240).
        bits: bit depth of the codes, 8 or 10.
    """

    planes: np.ndarray
    colorspace: int
    full_range: bool
    bits: int = 8

    @property
    def dtype(self) -> np.dtype:
        """Component type of the RGB array it stands for: uint8 at 8 bits, uint16 (full scale) above."""
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)``: the shape of the RGB picture it stands for."""
        rows, w = self.planes.shape
        return rows * 2 // 3, w, 3


#: Matrix codes :mod:`upvid.engine.colour` converts (others stay on the RGB path).
YUV_MATRICES = frozenset({1, 2, 4, 5, 6, 7, 9, 10})
