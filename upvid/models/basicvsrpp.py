"""BasicVSR++: second-order grid propagation with flow-guided deformable alignment (x4).

Paper: Kelvin C.K. Chan, Shangchen Zhou, Xiangyu Xu, Chen Change Loy, "BasicVSR++: Improving
Video Super-Resolution with Enhanced Propagation and Alignment", CVPR 2022 (arXiv:2104.13371).
Official code: ckkelvinchan/BasicVSR_PlusPlus (``mmedit/models/backbones/sr_backbones/basicvsr_pp.py``,
built on MMEditing, now open-mmlab/mmagic), Apache-2.0. Checkpoints: the MMEditing model zoo
(``basicvsr_plusplus_c64n7_8x1_600k_reds4_20210217-db622b2f.pth`` and the Vimeo-90K BI/BD ones).
This is a clean reimplementation with the official parameter names (except SpyNet, see below)
and the same numerics.

Network, for a clip of ``T`` low-resolution frames:

1. per-frame features: conv + 5 residual blocks (``feat_extract``);
2. SpyNet flows between neighbouring frames, both directions (computed at the LR size);
3. four propagation passes over the clip, ``backward_1``, ``forward_1``, ``backward_2``,
   ``forward_2`` (the "grid"): each pass carries a feature along the clip; at every frame the
   features of the previous *two* steps of the same pass (second order) are aligned to the current
   frame by :class:`SecondOrderDeformableAlignment`, then refined by a residual trunk
   (``backbone.<pass>``) that also sees the frame's features from all earlier passes;
4. reconstruction: the five features of each frame (spatial + 4 passes) -> conv + 5 residual
   blocks -> two pixel-shuffle x2 -> conv -> RGB, added to the bilinear x4 of the LR frame.

Flow-guided deformable alignment (the official ``SecondOrderDeformableAlignment``, a DCNv2 with
16 offset groups over the concatenation ``[f_{i-1}, f_{i-2}]``): a 4-conv head on
``[warp(f_{i-1}), x_i, warp(f_{i-2}), flow_1, flow_2]`` predicts ``27 * G`` channels, split in
three equal chunks ``o1, o2, m``; the offsets are ``max_residue_magnitude * tanh([o1, o2])``, whose
first half (groups ``0..G/2-1``, reading ``f_{i-1}``) gets ``flow_1`` and second half ``flow_2``
added, both flipped to ``(dy, dx)`` and repeated for every kernel point (the interleaved
``(dy, dx)`` layout that mmcv's ``modulated_deform_conv2d`` and ``torchvision.ops.deform_conv2d``
share); the mask is ``sigmoid(m)``. ``flow_2`` is the composition
``flow_1 + warp(flow_{i-1 -> i-2}, flow_1)``.

Differences from the reference that do not change the numbers:

- SpyNet runs over the frame pairs in chunks (:func:`upvid.models.basicvsr.compute_flows`), and
  stays fp32 under autocast; offsets, mask and the deformable convolution are computed in fp32
  whatever the feature precision.
- The reconstruction of a frame runs inside the last pass as soon as its features are complete,
  and the features it no longer needs are released (lower peak memory). The official
  ``cpu_cache`` (features parked in host memory for clips over 100 frames on CUDA) is not
  reproduced: upvid streams bounded clips instead (``frames``/``overlap`` in ``weights.toml``).
- The official "mirror-extended input" shortcut (reuse the backward flows when the clip is
  ``x + x[::-1]``) is not reproduced: it only saves time, and its flag is sticky in the reference.
- The reference asserts ``H, W >= 64`` (SpyNet's six pyramid levels). Smaller inputs are padded
  here (reflect, or replicate where reflect cannot reach) to 64 and the output cropped back,
  so any size >= 1 works; the numbers for inputs of at least 64 px are unchanged.
- A single-frame clip is accepted (no flow needed; the reference fails on it).

Checkpoint conversion (:func:`convert_official`): MMEditing checkpoints hold
``{'meta': ..., 'state_dict': {'generator.<key>': ...}, ...}`` (plus the restorer's
``step_counter`` buffer). After unwrapping ``state_dict`` and stripping ``generator.``, every key
is ours except SpyNet's ``spynet.basic_module.{i}.basic_module.{j}.conv.{weight,bias}``, which
become ``spynet.basic_module.{i}.basic_module.{2j}.{weight,bias}``
(:func:`upvid.models.blocks.convert_mmedit_spynet_keys`). Non-generator entries are dropped and
SpyNet's constant ``mean``/``std`` buffers added when absent.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import deform_conv2d

from upvid.errors import ModelInputError
from upvid.models.blocks import PASSES, PixelShufflePack, ResidualBlocksWithInputConv, pad_clip_to
from upvid.models.flow import SpyNet, add_spynet_buffers, compute_flows, convert_mmedit_spynet_keys, flow_warp

__all__ = ["BasicVSRPlusPlus", "SecondOrderDeformableAlignment", "convert_official"]

#: The propagation passes, in the order they run (and the order their features are concatenated).

#: The reference requires LR inputs of at least this size (SpyNet pyramid); smaller ones are padded.
MIN_SIZE = 64


def _warp(x: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``(N, C, H, W)`` with a ``(N, 2, H, W)`` flow in pixels (bilinear, zeros outside)."""
    return flow_warp(x, flow.permute(0, 2, 3, 1))


class SecondOrderDeformableAlignment(nn.Module):
    """Flow-guided modulated deformable convolution aligning two earlier features to the current frame.

    Parameter names follow the official module (an mmcv ``ModulatedDeformConv2d`` subclass):
    ``weight``, ``bias`` (the deformable conv) and ``conv_offset.{0,2,4,6}`` (the offset/mask head).

    Args:
        in_channels: channels of the features to align, ``2 * C`` (``[f_{i-1}, f_{i-2}]``).
        out_channels: output channels ``C``.
        kernel_size: deformable conv kernel (square).
        padding: deformable conv padding.
        deform_groups: offset groups ``G`` (the first half reads ``f_{i-1}``, the second ``f_{i-2}``).
        max_residue_magnitude: bound of the learned offset residue around the flow (Eq. 6).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        deform_groups: int = 16,
        max_residue_magnitude: float = 10.0,
    ) -> None:
        super().__init__()
        if deform_groups % 2:
            raise ValueError(f"deform_groups must be even (half per earlier frame), got {deform_groups}")
        self.kernel_size = kernel_size
        self.padding = padding
        self.deform_groups = deform_groups
        self.max_residue_magnitude = max_residue_magnitude
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        c = out_channels
        k2 = kernel_size * kernel_size
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * c + 4, c, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(c, c, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(c, c, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(c, 3 * k2 * deform_groups, 3, 1, 1),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Training-time init of the reference: uniform(+-1/sqrt(fan_in)) conv weight, zero bias,
        zero offset/mask head output (offsets start at the flow, mask at 0.5)."""
        bound = 1.0 / math.sqrt(self.weight[0].numel())
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, x: Tensor, cond: Tensor, flow_1: Tensor, flow_2: Tensor) -> Tensor:
        """Align.

        Args:
            x: ``(N, 2C, H, W)`` unwarped features ``[f_{i-1}, f_{i-2}]``.
            cond: ``(N, 3C, H, W)`` condition ``[warp(f_{i-1}), x_i, warp(f_{i-2})]``.
            flow_1: ``(N, 2, H, W)`` flow (pixels, ``(dx, dy)``) from frame ``i`` to ``i-1``.
            flow_2: ``(N, 2, H, W)`` flow from frame ``i`` to ``i-2``.

        Returns:
            ``(N, C, H, W)`` aligned features, dtype of ``x``.
        """
        flows = torch.cat([flow_1, flow_2], dim=1).to(cond.dtype)
        out = self.conv_offset(torch.cat([cond, flows], dim=1))
        n_off = 2 * out.shape[1] // 3
        # offsets in fp32: residue bounded by tanh, around the flow of each half of the groups
        residue = self.max_residue_magnitude * torch.tanh(out[:, :n_off].float())
        per_half = n_off // 4  # kernel points x groups per earlier frame
        base = torch.cat(
            [flow_1.float().flip(1).repeat(1, per_half, 1, 1), flow_2.float().flip(1).repeat(1, per_half, 1, 1)],
            dim=1,
        )
        offset = residue + base
        mask = torch.sigmoid(out[:, n_off:].float())
        p = self.padding
        y = deform_conv2d(
            x.float(), offset, self.weight.float(), self.bias.float(), padding=(p, p), mask=mask
        )
        return y.to(x.dtype)


class BasicVSRPlusPlus(nn.Module):
    """BasicVSR++ x4 (official parameter names; SpyNet with BasicSR's names).

    Args:
        mid_channels: feature channels ``C`` (official: 64).
        num_blocks: residual blocks of each propagation trunk (official: 7).
        max_residue_magnitude: bound of the learned offset residue (official: 10).
        flow_chunk: frame pairs per SpyNet call (memory bound only).
    """

    def __init__(
        self,
        mid_channels: int = 64,
        num_blocks: int = 7,
        max_residue_magnitude: float = 10.0,
        flow_chunk: int = 8,
    ) -> None:
        super().__init__()
        c = mid_channels
        self.mid_channels = c
        self.flow_chunk = flow_chunk
        self.spynet = SpyNet()
        self.feat_extract = ResidualBlocksWithInputConv(3, c, 5)
        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, name in enumerate(PASSES):
            self.deform_align[name] = SecondOrderDeformableAlignment(
                2 * c, c, 3, padding=1, deform_groups=16, max_residue_magnitude=max_residue_magnitude
            )
            # input: spatial features + the i earlier passes + the aligned propagated feature
            self.backbone[name] = ResidualBlocksWithInputConv((2 + i) * c, c, num_blocks)
        self.reconstruction = ResidualBlocksWithInputConv(5 * c, c, 5)
        self.upsample1 = PixelShufflePack(c, c, 2, upsample_kernel=3)
        self.upsample2 = PixelShufflePack(c, 64, 2, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def _reconstruct(self, feats: list[Tensor], lr: Tensor) -> Tensor:
        """``feats``: 5 x ``(B, C, H, W)``; ``lr``: ``(B, 3, H, W)`` -> ``(B, 3, 4H, 4W)``."""
        hr = self.reconstruction(torch.cat(feats, dim=1))
        hr = F.leaky_relu(self.upsample1(hr), 0.1)
        hr = F.leaky_relu(self.upsample2(hr), 0.1)
        hr = F.leaky_relu(self.conv_hr(hr), 0.1)
        hr = self.conv_last(hr)
        return hr + F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], any ``T >= 1``, any ``H``, ``W``
                (below 64 px the frames are padded internally, see the module docstring).

        Returns:
            ``(B, T, 3, 4H, 4W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong shape.
        """
        if x.ndim != 5 or x.shape[2] != 3 or x.shape[1] < 1:
            raise ModelInputError(f"BasicVSR++: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        if h < MIN_SIZE or w < MIN_SIZE:
            x = pad_clip_to(x, max(h, MIN_SIZE), max(w, MIN_SIZE))
            return self.forward(x)[..., : 4 * h, : 4 * w]

        feats = self.feat_extract(x.flatten(0, 1)).unflatten(0, (b, t))
        spatial: list[Tensor | None] = list(feats.unbind(1))
        del feats
        flows = compute_flows(self.spynet, x, chunk=self.flow_chunk) if t > 1 else (None, None)
        passes: dict[str, list[Tensor | None]] = {}
        outputs: list[Tensor] = []
        for name in PASSES:
            passes[name] = self._propagate(name, spatial, passes, flows, x, outputs)
        return torch.stack(outputs, dim=1)

    def _propagate(self, name: str, spatial: list[Tensor | None], passes: dict[str, list[Tensor | None]],
                   flows: tuple[Tensor | None, Tensor | None], x: Tensor, outputs: list[Tensor]) -> list[Tensor | None]:
        """One pass of second-order grid propagation (``backward_1`` ... ``forward_2``).

        Args:
            name: the pass.
            spatial: per frame ``(B, C, H, W)`` features of ``feat_extract`` (entries released once unused).
            passes: the earlier passes' per-frame features, in pass order.
            flows: ``(forward, backward)`` flows ``(B, T-1, 2, H, W)`` (``None`` for a one-frame clip).
            x: the ``(B, T, 3, H, W)`` LR clip (for the reconstruction's bilinear base).
            outputs: the last pass appends each frame's ``(B, 3, 4H, 4W)`` reconstruction here, in order.

        Returns:
            This pass's per-frame features (the last pass: all ``None``, released after reconstruction).
        """
        b, t, _, h, w = x.shape
        flows_fwd, flows_bwd = flows
        zeros = x.new_zeros(b, self.mid_channels, h, w)
        backward = name.startswith("backward")
        order = range(t - 1, -1, -1) if backward else range(t)
        result: list[Tensor | None] = [None] * t
        prop, prev2 = zeros, zeros  # outputs of this pass one and two steps back
        for step, idx in enumerate(order):
            current = spatial[idx]
            if step > 0:
                # flow from frame idx to the previous step's frame, and that frame's own step flow
                flow_1 = flows_bwd[:, idx] if backward else flows_fwd[:, idx - 1]
                cond_1 = _warp(prop, flow_1)
                if step > 1:
                    step_flow = flows_bwd[:, idx + 1] if backward else flows_fwd[:, idx - 2]
                    flow_2 = flow_1 + _warp(step_flow, flow_1)
                    cond_2 = _warp(prev2, flow_2)
                    feat_2 = prev2
                else:
                    flow_2 = torch.zeros_like(flow_1)
                    cond_2 = torch.zeros_like(cond_1)
                    feat_2 = torch.zeros_like(prop)
                aligned = self.deform_align[name](
                    torch.cat([prop, feat_2], dim=1),
                    torch.cat([cond_1, current, cond_2], dim=1),
                    flow_1,
                    flow_2,
                )
            else:
                aligned = zeros
            earlier = [passes[p][idx] for p in passes]
            new = aligned + self.backbone[name](torch.cat([current, *earlier, aligned], dim=1))
            prev2, prop = prop, new
            if name == PASSES[-1]:
                outputs.append(self._reconstruct([current, *earlier, new], x[:, idx]))
                spatial[idx] = None  # release what no later step reads
                for feats in passes.values():
                    feats[idx] = None
            else:
                result[idx] = new
        return result


_GENERATOR_MODULES = (
    "spynet.", "feat_extract.", "deform_align.", "backbone.", "reconstruction.",
    "upsample1.", "upsample2.", "conv_hr.", "conv_last.",
)


#: BasicSR's basicvsrpp_arch.py names the two x2 upsampling convs ``upconv1``/``upconv2`` (a
#: separate ``nn.PixelShuffle`` follows); MMEditing wraps each in a ``PixelShufflePack``.
_BASICSR_UPCONV = {"upconv1.": "upsample1.upsample_conv.", "upconv2.": "upsample2.upsample_conv."}


def is_basicsr_layout(state_dict: dict[str, Tensor]) -> bool:
    """Whether a BasicVSR++ state dict is in BasicSR's layout (``upconv1``/``upconv2`` keys)
    rather than MMEditing's (``upsample1.upsample_conv``)."""
    return any(k.removeprefix("generator.").startswith(tuple(_BASICSR_UPCONV)) for k in state_dict)


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official BasicVSR++ state dict, in either published layout -> ours.

    - MMEditing/mmagic (``basicvsr_plusplus_net.py``, download.openmmlab.com checkpoints):
      SpyNet convs numbered as ConvModules, upsampling in PixelShufflePacks.
    - BasicSR (``basicsr/archs/basicvsrpp_arch.py``, as BasicSR and its users save it, unwrapped
      from ``params``): BasicSR's SpyNet numbering (ours) and ``upconv1``/``upconv2``.

    The layout is detected by its keys (:func:`is_basicsr_layout`).

    Args:
        state_dict: the checkpoint's ``state_dict`` (a leftover ``generator.`` prefix is stripped
            here too); entries of other modules (the restorer's ``step_counter``) and non-tensors
            are dropped.

    Returns:
        A new dict that loads strictly into :class:`BasicVSRPlusPlus` (SpyNet keys renamed with
        :func:`~upvid.models.blocks.convert_mmedit_spynet_keys`, its ``mean``/``std`` added if absent).
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("generator.")
        for old, new in _BASICSR_UPCONV.items():
            if key.startswith(old):
                key = new + key[len(old):]
        if isinstance(value, Tensor) and key.startswith(_GENERATOR_MODULES):
            out[key] = value
    return add_spynet_buffers(convert_mmedit_spynet_keys(out))
