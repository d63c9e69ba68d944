"""VESPCN: spatio-temporal sub-pixel network with coarse-to-fine motion compensation.

Paper: Caballero et al., "Real-Time Video Super-Resolution with Spatio-Temporal Networks
and Motion Compensation", CVPR 2017.
Implementation and checkpoint followed here: Thmen/EGVSR, https://github.com/Thmen/EGVSR
(``codes/models/networks/vespcn_nets.py``, ``codes/utils/motion.py``: ``VESPNet``,
``CoarseFineFlownet``, ``STN``; checkpoint ``pretrained_models/vespcn_ep0500.pth``, trained
on BD x4 data, Gaussian sigma 1.5), MIT licence. This file is an independent
reimplementation with the same numerics.

Network: a coarse (x4 strided, pixel-shuffled) then fine (x2) flow estimator maps
``(reference, target)`` to a flow that warps the reference onto the target (bilinear,
border padding, gain 32); the warped references and the target are concatenated and
super-resolved by a small network of *unpadded* 3x3 convolutions (entry conv, three
ReLU residual blocks, conv to ``64 * s**2`` channels, pixel shuffle, exit conv).

Quirks of the checkpoint, reproduced because the weights expect them:

- The official forward uses the *next* frame for every reference slot: with a 3-frame
  window ``(prev, centre, next)`` the SR input is ``[warp(next), warp(next), centre]``;
  ``prev`` is ignored. Here the window keeps the usual sliding-window contract (3 frames
  in, centre frame out) and the same selection happens inside; at the end of a video the
  engine's temporal reflect padding supplies frame ``T-2`` as "next", which is what
  EGVSR's own ``dual-reflect`` test padding does.
- The STN identity grid is ``linspace(-1, 1, N)`` (corner-aligned) but is sampled with
  ``align_corners=False``, i.e. a zero flow is a slight zoom; kept as is.
- The unpadded SR convolutions turn ``H x W`` into ``(sH - 18) x (sW - 18)``; EGVSR then
  compared it with the top-left corner of the ground truth (its published Vid4 PSNR of
  ~16 dB reflects that misalignment). Measured on Vid4 with EGVSR's BD LR frames
  (Gaussian sigma 1.5, LR pixel ``i`` sampled at HR pixel ``s*i``), the official output
  pixel ``j`` matches HR pixel ``j + 8``. To return a full ``sH x sW`` frame on that grid,
  the SR input is replicate-padded by ``border = 3`` LR pixels and the result cropped at
  ``s*border - 8``; away from the borders the values equal the official output exactly.
- Frames must have H and W multiples of 4 (the flow net's strided convs and pixel
  shuffles); the record's ``size_multiple = 4`` pads them (the official code zero-pads).

Key conversion (:func:`convert_official`): ``mc.coarse_flow.N.0.*`` -> ``flow.coarse.N.*``,
``mc.fine_flow.N.0.*`` -> ``flow.fine.N.*``; ``sr.*`` keys are unchanged.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError

#: official output pixel j <-> HR pixel j + 8 (x4, measured on Vid4 BD, see module docstring)
_OFFICIAL_HR_OFFSET = 8


def stn_warp(img: Tensor, flow: Tensor) -> Tensor:
    """Warp ``img`` by a pixel-unit flow the way EGVSR's ``STN`` does.

    The identity grid is ``linspace(-1, 1, N)`` per axis, the flow is normalised by
    ``2 / N``, and ``grid_sample`` runs bilinear with border padding and
    ``align_corners=False`` (computed in fp32).

    Args:
        img: ``(B, C, H, W)``.
        flow: ``(B, 2, H, W)`` displacement ``(dx, dy)`` in pixels.

    Returns:
        ``(B, C, H, W)`` of ``img``'s dtype.
    """
    _b, _, h, w = img.shape
    gy = torch.linspace(-1.0, 1.0, h, dtype=torch.float64, device=img.device).float()
    gx = torch.linspace(-1.0, 1.0, w, dtype=torch.float64, device=img.device).float()
    base = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    f = flow.float()
    offset = torch.stack([f[:, 0] / w * 2, f[:, 1] / h * 2], dim=-1)
    grid = base.unsqueeze(0) + offset
    out = F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(img.dtype)


class CoarseFineFlow(nn.Module):
    """VESPCN motion estimation: a x4 coarse flow, then a x2 fine correction.

    Args:
        channels: channels per frame.
    """

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        # (in, out, kernel, stride) for each conv; padding is kernel // 2
        coarse = [(2 * channels, 24, 5, 2), (24, 24, 3, 1), (24, 24, 5, 2), (24, 24, 3, 1), (24, 32, 3, 1)]
        fine = [(3 * channels + 2, 24, 5, 2), (24, 24, 3, 1), (24, 24, 3, 1), (24, 24, 3, 1), (24, 8, 3, 1)]
        self.coarse = nn.ModuleList(nn.Conv2d(i, o, k, s, k // 2) for i, o, k, s in coarse)
        self.fine = nn.ModuleList(nn.Conv2d(i, o, k, s, k // 2) for i, o, k, s in fine)

    @staticmethod
    def _run(convs: nn.ModuleList, x: Tensor, shuffle: int) -> Tensor:
        for conv in convs[:-1]:
            x = F.relu(conv(x))
        return F.pixel_shuffle(torch.tanh(convs[-1](x)), shuffle)

    def forward(self, target: Tensor, ref: Tensor, gain: float = 1.0) -> Tensor:
        """Flow warping ``ref`` onto ``target``.

        Args:
            target: ``(B, C, H, W)``, H and W multiples of 4.
            ref: ``(B, C, H, W)``.
            gain: multiplier of the (tanh-bounded) network output, in pixels.

        Returns:
            ``(B, 2, H, W)`` flow ``(dx, dy)`` in pixels.
        """
        coarse = self._run(self.coarse, torch.cat([ref, target], 1), 4)
        warped = stn_warp(ref, coarse)
        fine = self._run(self.fine, torch.cat([ref, target, coarse, warped], 1), 2) + coarse
        return fine * gain


class ReluResBlock(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))`` with padded 3x3 convs.

    Args:
        channels: feature channels.
    """

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class VESPCNSR(nn.Module):
    """The spatio-temporal SR branch (unpadded entry/upsampling/exit convs).

    Args:
        scale: upscaling factor.
        in_channels: concatenated input channels (channels * frames).
        out_channels: output channels.
        feat: feature channels.
        num_blocks: residual blocks.
    """

    def __init__(self, scale: int = 4, in_channels: int = 9, out_channels: int = 3, feat: int = 64,
                 num_blocks: int = 3) -> None:
        super().__init__()
        self.entry = nn.Conv2d(in_channels, feat, 3)
        self.body = nn.ModuleList(ReluResBlock(feat) for _ in range(num_blocks))
        self.conv = nn.Conv2d(feat, feat * scale * scale, 3)
        self.exit = nn.Conv2d(feat, out_channels, 3)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, s*(H-4) - 2, s*(W-4) - 2)``."""
        feat = self.entry(x)
        y = feat
        for block in self.body:
            y = block(y)
        y = F.relu(y) + feat
        return self.exit(F.pixel_shuffle(self.conv(y), self.scale))


class VESPCN(nn.Module):
    """VESPCN with EGVSR's checkpoint conventions: ``(B, N, C, H, W)`` -> centre frame ``(B, C, sH, sW)``.

    Args:
        scale: upscaling factor (the checkpoint: 4).
        channels: channels per frame (3, RGB).
        depth: window length N (the checkpoint: 3).
        gain: flow gain in pixels (32).
        border: LR pixels of replicate padding given to the SR branch so that the output
            covers the full ``sH x sW`` frame (at least 3 for x4).
    """

    def __init__(self, scale: int = 4, channels: int = 3, depth: int = 3, gain: float = 32.0, border: int = 3) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("VESPCN needs at least 2 frames")
        self.scale = scale
        self.channels = channels
        self.depth = depth
        self.gain = gain
        self.border = border
        self.crop = scale * border - _OFFICIAL_HR_OFFSET
        if self.crop < 0 or scale * (2 * border - 4) - 2 - self.crop < 0:
            raise ValueError(f"border {border} too small for scale {scale}")
        self.flow = CoarseFineFlow(channels)
        self.sr = VESPCNSR(scale, channels * depth, channels)

    def reference_indices(self) -> list[int]:
        """Window index used for each reference slot (the official duplication of later frames)."""
        centre = self.depth // 2
        later = list(range(centre + 1, self.depth))
        return [later[i % len(later)] for i in range(self.depth - 1)]

    def sr_input(self, x: Tensor) -> Tensor:
        """Motion-compensated SR input ``(B, N*C, H, W)``: warped references then the centre frame."""
        target = x[:, self.depth // 2]
        warps: dict[int, Tensor] = {}
        for i in self.reference_indices():
            if i not in warps:
                ref = x[:, i]
                warps[i] = stn_warp(ref, self.flow(target, ref, self.gain))
        return torch.cat([warps[i] for i in self.reference_indices()] + [target], 1)

    def forward_official(self, x: Tensor) -> Tensor:
        """The official output size: ``(B, N, C, H, W)`` -> ``(B, C, sH - 18, sW - 18)`` (x4), no padding."""
        return self.sr(self.sr_input(x))

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve the centre frame of a window.

        Args:
            x: ``(B, N, C, H, W)`` float RGB in [0, 1]; H, W multiples of 4.

        Returns:
            ``(B, C, s*H, s*W)`` about [0, 1] (not clamped), on the BD grid (LR pixel ``i`` at
            HR pixel ``s*i``).

        Raises:
            ModelInputError: wrong shape, window length, or H/W not multiples of 4.
        """
        if x.ndim != 5 or x.shape[1] != self.depth or x.shape[2] != self.channels:
            raise ModelInputError(f"VESPCN: expected (B, {self.depth}, {self.channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ModelInputError(f"VESPCN: H and W must be multiples of 4, got {h}x{w}")
        p = self.border
        out = self.sr(F.pad(self.sr_input(x), (p, p, p, p), mode="replicate"))
        s, c = self.scale, self.crop
        return out[..., c : c + s * h, c : c + s * w]


_FLOW_KEY = re.compile(r"^mc\.(coarse|fine)_flow\.(\d+)\.0\.(weight|bias)$")


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """EGVSR ``VESPNet`` state dict -> ours.

    ``mc.coarse_flow.N.0.*`` -> ``flow.coarse.N.*``, ``mc.fine_flow.N.0.*`` -> ``flow.fine.N.*``,
    ``sr.*`` unchanged.

    Raises:
        ValueError: on a key of neither form.
    """
    out: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        m = _FLOW_KEY.match(k)
        if m:
            out[f"flow.{m[1]}.{m[2]}.{m[3]}"] = v
        elif k.startswith("sr."):
            out[k] = v
        else:
            raise ValueError(f"not a VESPCN checkpoint key: {k!r}")
    return out
