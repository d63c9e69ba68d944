"""The one signature every architecture is run through (:class:`Upscaler`), and BT.601 luma for Y-only networks."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.registry import Family, ModelRecord


_BT601 = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """ITU-R BT.601 studio-range RGB -> YCbCr, MATLAB ``rgb2ycbcr`` convention.

    Args:
        x: ``(..., 3, H, W)`` RGB in [0, 1].

    Returns:
        ``(..., 3, H, W)`` YCbCr, Y in [16/255, 235/255], Cb/Cr in [16/255, 240/255].
    """
    m = _BT601.to(device=x.device, dtype=x.dtype)
    offset = torch.tensor([16.0, 128.0, 128.0], device=x.device, dtype=x.dtype).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, x) + offset


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`. ``(..., 3, H, W)`` -> RGB (unclamped, about [0, 1])."""
    m = torch.linalg.inv(_BT601.double()).to(device=x.device, dtype=x.dtype)
    offset = torch.tensor([16.0, 128.0, 128.0], device=x.device, dtype=x.dtype).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, x - offset)


class Upscaler(nn.Module):
    """One signature for every architecture: ``(B, T, 3, H, W)`` RGB [0, 1] -> ``(B, T_out, 3, sH, sW)``.

    ``T_out`` is ``T`` for recurrent models and 1 (the centre frame) for sliding-window ones,
    where ``T`` must equal ``record.frames``. Inputs are reflect-padded to ``size_multiple``
    and the output cropped back; luma-only networks get Y (BT.601) and their chroma is
    bicubic-upsampled; networks that want [0, 255] get it.

    Args:
        net: the bare architecture (see the registry contract).
        record: its record.
        scale: the effective scale (``record.scale`` unless the model takes any scale).
    """

    def __init__(self, net: nn.Module, record: ModelRecord, scale: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.record = record
        self.scale = record.scale if scale is None else scale

    @property
    def family(self) -> Family:
        return self.record.family

    def set_clip_position(self, start: int, is_last: bool) -> None:
        """Tell a recurrent network where the next clip lies in the video: its first frame's index
        ``start`` and whether it ends the video. Networks whose schedule depends on absolute frame
        positions (IconVSR's keyframe grid) define ``set_clip_position``; for the rest it is a no-op."""
        hook = getattr(self.net, "set_clip_position", None)
        if hook is not None:
            hook(start, is_last)

    def forward(self, x: Tensor) -> Tensor:
        """Upscale.

        Args:
            x: ``(B, T, 3, H, W)`` float RGB in [0, 1].

        Returns:
            ``(B, T_out, 3, s*H, s*W)`` float RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong rank, channel count, or a sliding window of the wrong length.
        """
        if x.ndim != 5 or x.shape[2] != 3:
            raise ModelInputError(f"{self.record.name}: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        rec = self.record
        if rec.family == "sliding-window" and t != rec.frames:
            raise ModelInputError(f"{rec.name}: sliding window of {rec.frames} frames, got {t}")
        m = rec.size_multiple
        # padded up to min_size (VRT: a full window at 1/8 scale), then to a multiple of size_multiple
        ph, pw = (-(-max(v, rec.min_size) // m) * m - v for v in (h, w))
        if ph or pw:
            if ph >= h or pw >= w:  # reflect needs pad < size
                x = F.pad(x.flatten(0, 1), (0, pw, 0, ph), mode="replicate").unflatten(0, (b, t))
            else:
                x = F.pad(x.flatten(0, 1), (0, pw, 0, ph), mode="reflect").unflatten(0, (b, t))
        chroma = None
        if rec.channels == "y":
            ycc = rgb_to_ycbcr(x)
            chroma = ycc[:, :, 1:]
            x = ycc[:, :, :1]
        if rec.input_mean:
            x = x - rec.input_mean
        if rec.input_range != 1.0:
            x = x * rec.input_range
        if rec.family == "recurrent":
            y = self.net(x)
        elif rec.frames == 1:
            y = self.net(x[:, 0]).unsqueeze(1)
        else:
            y = self.net(x).unsqueeze(1)
        if rec.input_range != 1.0:
            y = y / rec.input_range
        if rec.input_mean:
            y = y + rec.input_mean
        if chroma is not None:
            centre = chroma if rec.family == "recurrent" else chroma[:, rec.frames // 2 : rec.frames // 2 + 1]
            up = F.interpolate(centre.flatten(0, 1), scale_factor=self.scale, mode="bicubic", align_corners=False)
            y = ycbcr_to_rgb(torch.cat([y, up.unflatten(0, centre.shape[:2])], dim=2))
        s = self.scale
        return y[..., : h * s, : w * s]
