"""BasicVSR: bidirectional recurrent video super-resolution with flow-warped propagation (x4).

Paper: Kelvin C.K. Chan, Xintao Wang, Ke Yu, Chao Dong, Chen Change Loy, "BasicVSR: The Search
for Essential Components in Video Super-Resolution and Beyond", CVPR 2021.
Official code and checkpoints: XPixelGroup/BasicSR (``basicsr/archs/basicvsr_arch.py``),
Apache-2.0. Clean reimplementation with the same parameter names and numerics.

Network: SpyNet flows between neighbouring frames (both directions); a backward pass and a
forward pass each carry a feature map along the clip, warped by the flow to the current frame,
concatenated with it and refined by a residual trunk; the two features of every frame are fused
(1x1 conv) and upsampled x4 by pixel shuffle, added to the bilinear x4 of the LR frame.

Differences from the reference that do not change the numbers: SpyNet runs over the frame pairs
in chunks (bounded memory; it stays fp32 under autocast, see :class:`~upvid.models.flow.SpyNet`); a
single-frame clip is accepted (no flow needed). The official test protocol feeds whole sequences (REDS4: 100 frames); upvid
streams clips (``frames``/``overlap`` in ``weights.toml``), see the registry record.

Checkpoint conversion: none. BasicSR checkpoints (``BasicVSR_REDS4-543c8261.pth``,
``BasicVSR_Vimeo90K_BDx4-e9bf46eb.pth``, ``BasicVSR_Vimeo90K_BIx4-2a29695a.pth``; state dict
under ``params``) use our keys; :func:`convert_official` adds SpyNet's constant ``mean``/``std``
buffers if a checkpoint lacks them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.blocks import ResidualBlocksWithInputConv, X4Head
from upvid.models.flow import SpyNet, add_spynet_buffers, compute_flows, warp

__all__ = ["BasicVSR", "convert_official"]


class BasicVSR(X4Head):
    """BasicVSR x4 (BasicSR parameter names).

    Args:
        num_feat: channels ``C`` of the propagated features.
        num_block: residual blocks of each propagation trunk (official: 30).
    """

    def __init__(self, num_feat: int = 64, num_block: int = 30) -> None:
        super().__init__()
        self.num_feat = num_feat
        self.spynet = SpyNet()
        self.backward_trunk = ResidualBlocksWithInputConv(num_feat + 3, num_feat, num_block)
        self.forward_trunk = ResidualBlocksWithInputConv(num_feat + 3, num_feat, num_block)
        self.fusion = nn.Conv2d(num_feat * 2, num_feat, 1, 1, 0, bias=True)
        self._build_head(num_feat)

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
            raise ModelInputError(f"BasicVSR: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        if t > 1:
            flows_fwd, flows_bwd = compute_flows(self.spynet, x)

        backward: list[Tensor | None] = [None] * t
        feat = x.new_zeros(b, self.num_feat, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat = warp(feat, flows_bwd[:, i])
            feat = self.backward_trunk(torch.cat([x[:, i], feat], dim=1))
            backward[i] = feat

        outputs = []
        feat = x.new_zeros(b, self.num_feat, h, w)
        for i in range(t):
            if i > 0:
                feat = warp(feat, flows_fwd[:, i - 1])
            feat = self.forward_trunk(torch.cat([x[:, i], feat], dim=1))
            fused = F.leaky_relu(self.fusion(torch.cat([backward[i], feat], dim=1)), 0.1)
            backward[i] = None
            outputs.append(self._upsample(fused, x[:, i]))
        return torch.stack(outputs, dim=1)


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """BasicSR BasicVSR state dict (unwrapped from ``params``) -> ours.

    Keys are identical; non-tensor entries are dropped and the SpyNet ``mean``/``std`` buffers are
    added if missing.

    Args:
        state_dict: official keys and tensors.

    Returns:
        A new dict that loads strictly into :class:`BasicVSR`.
    """
    return add_spynet_buffers({k: v for k, v in state_dict.items() if isinstance(v, Tensor)})
