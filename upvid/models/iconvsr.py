"""IconVSR: BasicVSR with information refill and coupled propagation (recurrent, x4).

Paper: Kelvin C.K. Chan, Xintao Wang, Ke Yu, Chao Dong, Chen Change Loy, "BasicVSR: The Search
for Essential Components in Video Super-Resolution and Beyond", CVPR 2021 (Sec. 4, IconVSR).
Official code and checkpoints: XPixelGroup/BasicSR (``basicsr/archs/basicvsr_arch.py``,
``IconVSR`` and ``EDVRFeatureExtractor``), Apache-2.0. Clean reimplementation with the same
parameter names and numerics.

Network: as BasicVSR (:mod:`upvid.models.basicvsr`), plus
- information refill: at keyframes (every ``keyframe_stride``-th frame and the last one) an EDVR
  feature extractor (PCD alignment + TSA fusion over ``2 * temporal_padding + 1`` frames, from
  :mod:`upvid.models.edvr`) computes features that are fused (3x3 conv) into the propagated
  features of both branches;
- coupled propagation: the forward trunk also sees the backward branch's features of the frame.

Temporal padding of the keyframe windows follows the reference exactly: the clip is extended by
frames ``[2p, 2p-1, ..., p+1]`` in front and ``[T-p-2, ..., T-2p-1]`` behind (``p`` the temporal
padding; for ``p = 2``: ``x4, x3 | x0 ... x_{T-1} | x_{T-4}, x_{T-5}``). The reference needs
``T >= 2p + 1``; for shorter clips (only at the end of very short videos) the out-of-range
indices are mirrored into the clip instead of failing. Inputs are reflect-padded to a multiple
of 4 (for PCD) and the output cropped, as in the reference.

Checkpoint conversion: none. BasicSR checkpoints (``IconVSR_REDS-aaa5367f.pth``,
``IconVSR_Vimeo90K_BDx4-cfcb7e00.pth``, ``IconVSR_Vimeo90K_BIx4-35fec07c.pth``; state dict
under ``params``; keys ``edvr.*``, ``spynet.*``, ``backward_fusion``, ``backward_trunk``,
``forward_fusion``, ``forward_trunk``, head) use our keys; :func:`convert_official` only adds
SpyNet's constant buffers if missing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.engine.temporal import reflect_index
from upvid.errors import ModelInputError
from upvid.models.blocks import ResidualBlocksWithInputConv, X4Head
from upvid.models.flow import SpyNet, add_spynet_buffers, compute_flows, warp
from upvid.models.edvr import EDVRFeatureExtractor

__all__ = ["IconVSR", "convert_official", "keyframe_window"]


def keyframe_window(i: int, n: int, temporal_padding: int) -> list[int]:
    """Frame indices of the EDVR window of keyframe ``i`` in a clip of ``n`` frames.

    Args:
        i: keyframe index in ``[0, n)``.
        n: clip length.
        temporal_padding: ``p``; the window has ``2p + 1`` frames, centred on ``i``.

    Returns:
        ``2p + 1`` indices in ``[0, n)`` (BasicSR's padding for ``n >= 2p + 1``).
    """
    p = temporal_padding
    pre = [2 * p - k for k in range(p)]
    post = [n - p - 2 - k for k in range(p)]
    padded = pre + list(range(n)) + post
    return [reflect_index(j, n) for j in padded[i : i + 2 * p + 1]]


class IconVSR(X4Head):
    """IconVSR x4 (BasicSR parameter names).

    Args:
        num_feat: channels ``C``.
        num_block: residual blocks of each propagation trunk (official: 30).
        keyframe_stride: distance between keyframes (official: 5).
        temporal_padding: ``p``; the EDVR window has ``2p + 1`` frames (official: 2).
    """

    def __init__(self, num_feat: int = 64, num_block: int = 30, keyframe_stride: int = 5, temporal_padding: int = 2) -> None:
        super().__init__()
        self.num_feat = num_feat
        self.keyframe_stride = keyframe_stride
        self.temporal_padding = temporal_padding
        self.clip_start, self.clip_is_last = 0, True  # where the clip lies in the video, see set_clip_position
        self.edvr = EDVRFeatureExtractor(num_frame=2 * temporal_padding + 1, num_feat=num_feat, deformable_groups=8)
        self.spynet = SpyNet()
        self.backward_fusion = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1, bias=True)
        self.backward_trunk = ResidualBlocksWithInputConv(num_feat + 3, num_feat, num_block)
        self.forward_fusion = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1, bias=True)
        self.forward_trunk = ResidualBlocksWithInputConv(2 * num_feat + 3, num_feat, num_block)
        self._build_head(num_feat)

    def set_clip_position(self, start: int, is_last: bool) -> None:
        """Place the next clip in the video (called by the streaming engine before each clip).

        Args:
            start: index of the clip's first frame in the video.
            is_last: the clip ends the video (its last frame is then a keyframe).
        """
        self.clip_start, self.clip_is_last = start, is_last

    def keyframes(self, n: int) -> list[int]:
        """Keyframe indices (within the clip) of a clip of ``n`` frames.

        BasicSR's IconVSR places keyframes on the *video's* grid: every ``keyframe_stride``-th
        frame from frame 0, plus the last frame. A streamed clip starting at frame ``clip_start``
        keeps that grid, so a clip cut does not move the keyframes (a whole-sequence call:
        ``clip_start = 0``, ``clip_is_last = True``).
        """
        s = self.clip_start
        idx = [i for i in range(n) if (s + i) % self.keyframe_stride == 0]
        if self.clip_is_last and (not idx or idx[-1] != n - 1):
            idx.append(n - 1)
        return idx

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], any ``T >= 1``, any ``H``, ``W``.

        Returns:
            ``(B, T, 3, 4H, 4W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong shape.
        """
        if x.ndim != 5 or x.shape[2] != 3:
            raise ModelInputError(f"IconVSR: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, c, h_in, w_in = x.shape
        ph, pw = (-h_in) % 4, (-w_in) % 4
        if ph or pw:
            mode = "reflect" if ph < h_in and pw < w_in else "replicate"
            x = F.pad(x.reshape(b * t, c, h_in, w_in), [0, pw, 0, ph], mode=mode).view(b, t, c, h_in + ph, w_in + pw)
        h, w = x.shape[-2:]

        keys = self.keyframes(t)
        if t > 1:
            flows_fwd, flows_bwd = compute_flows(self.spynet, x)
        refill = {i: self.edvr(x[:, keyframe_window(i, t, self.temporal_padding)]) for i in keys}

        backward: list[Tensor | None] = [None] * t
        feat = x.new_zeros(b, self.num_feat, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat = warp(feat, flows_bwd[:, i])
            if i in refill:
                feat = self.backward_fusion(torch.cat([feat, refill[i]], dim=1))
            feat = self.backward_trunk(torch.cat([x[:, i], feat], dim=1))
            backward[i] = feat

        outputs = []
        feat = x.new_zeros(b, self.num_feat, h, w)
        for i in range(t):
            if i > 0:
                feat = warp(feat, flows_fwd[:, i - 1])
            if i in refill:
                feat = self.forward_fusion(torch.cat([feat, refill.pop(i)], dim=1))
            feat = self.forward_trunk(torch.cat([x[:, i], backward[i], feat], dim=1))
            backward[i] = None
            outputs.append(self._upsample(feat, x[:, i]))
        return torch.stack(outputs, dim=1)[..., : 4 * h_in, : 4 * w_in]


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """BasicSR IconVSR state dict (unwrapped from ``params``) -> ours.

    Keys are identical; non-tensor entries are dropped and the SpyNet ``mean``/``std`` buffers are
    added if missing.

    Args:
        state_dict: official keys and tensors.

    Returns:
        A new dict that loads strictly into :class:`IconVSR`.
    """
    return add_spynet_buffers({k: v for k, v in state_dict.items() if isinstance(v, Tensor)})
