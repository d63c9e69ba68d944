"""Optical flow for the flow-guided VSR models: SpyNet, flows between neighbouring frames, warping.

- :class:`SpyNet`: Ranjan & Black, "Optical Flow Estimation using a Spatial Pyramid Network",
  CVPR 2017, with BasicSR's keys (XPixelGroup/BasicSR ``basicsr/archs/spynet_arch.py``);
  :func:`convert_mmedit_spynet_keys` reads mmagic/mmedit's names.
- :func:`flow_warp`: BasicSR's ``arch_util.flow_warp`` (``grid_sample``, bilinear, zeros padding).
- :func:`compute_flows`: forward and backward flows of a clip, as BasicVSR's ``compute_flow``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SpyNet", "add_spynet_buffers", "compute_flows", "convert_mmedit_spynet_keys", "flow_warp", "warp"]


def flow_warp(
    x: Tensor,
    flow: Tensor,
    interp_mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> Tensor:
    """Backward-warp an image or feature map with an optical flow.

    Args:
        x: ``(N, C, H, W)`` float tensor to sample from.
        flow: ``(N, H, W, 2)`` float tensor, displacement in pixels, last dim ``(dx, dy)``.
        interp_mode: ``grid_sample`` mode, ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``grid_sample`` padding, ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: passed to ``grid_sample`` (the official code uses ``True``).

    Returns:
        ``(N, C, H, W)`` warped tensor, same dtype as ``x``.

    Raises:
        ValueError: if the spatial sizes of ``x`` and ``flow`` differ.
    """
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow_warp: x is {tuple(x.shape[-2:])} but flow is {tuple(flow.shape[1:3])}")
    _, _, h, w = x.shape
    # Sampling grids stay in fp32 even under autocast: sub-pixel positions need the precision.
    grid_y, grid_x = torch.meshgrid(
        torch.arange(0, h, device=x.device, dtype=torch.float32),
        torch.arange(0, w, device=x.device, dtype=torch.float32),
        indexing="ij",
    )
    grid = torch.stack((grid_x, grid_y), 2)  # (H, W, 2)
    vgrid = grid + flow.float()
    vgrid_x = 2.0 * vgrid[..., 0] / max(w - 1, 1) - 1.0
    vgrid_y = 2.0 * vgrid[..., 1] / max(h - 1, 1) - 1.0
    vgrid_scaled = torch.stack((vgrid_x, vgrid_y), dim=3)
    out = F.grid_sample(
        x.float(), vgrid_scaled, mode=interp_mode, padding_mode=padding_mode, align_corners=align_corners
    )
    return out.to(x.dtype)


def compute_flows(spynet: SpyNet, x: Tensor, chunk: int = 8) -> tuple[Tensor, Tensor]:
    """Optical flows between neighbouring frames, in fp32.

    Args:
        spynet: the flow network.
        x: ``(B, T, 3, H, W)`` RGB in [0, 1], ``T >= 2``.
        chunk: frame pairs per SpyNet call (memory bound; the result does not depend on it).

    Returns:
        ``(forward, backward)``, each ``(B, T-1, 2, H, W)`` fp32 flows in pixels:
        ``forward[:, i]`` warps frame ``i`` onto frame ``i+1``, ``backward[:, i]`` warps frame
        ``i+1`` onto frame ``i``.
    """
    b, t, c, h, w = x.shape
    earlier = x[:, :-1].reshape(-1, c, h, w)
    later = x[:, 1:].reshape(-1, c, h, w)
    fwd, bwd = [], []
    for s in range(0, earlier.shape[0], chunk):  # SpyNet itself stays fp32 under autocast
        e, l_ = earlier[s : s + chunk], later[s : s + chunk]
        bwd.append(spynet(e, l_))
        fwd.append(spynet(l_, e))
    return torch.cat(fwd).view(b, t - 1, 2, h, w), torch.cat(bwd).view(b, t - 1, 2, h, w)


def warp(feat: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``(N, C, H, W)`` features with a ``(N, 2, H, W)`` flow (zeros padding)."""
    return flow_warp(feat, flow.permute(0, 2, 3, 1))


def add_spynet_buffers(state_dict: dict[str, Tensor], prefix: str = "spynet.") -> dict[str, Tensor]:
    """Add SpyNet's ImageNet ``mean``/``std`` buffers under ``prefix`` when absent (constants)."""
    out = dict(state_dict)
    ref = SpyNet()
    for name in ("mean", "std"):
        out.setdefault(prefix + name, getattr(ref, name).clone())
    return out


class _SpyNetBasicModule(nn.Module):
    """One pyramid level of SpyNet: 5 convs 7x7 (8->32->64->32->16->2) with ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.Sequential(
            nn.Conv2d(8, 32, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(32, 64, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(64, 32, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(32, 16, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(16, 2, 7, 1, 3),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.basic_module(x)


class SpyNet(nn.Module):
    """SpyNet optical flow (Ranjan & Black, CVPR 2017), BasicSR's port and key names.

    Keys: ``basic_module.{0..5}.basic_module.{0,2,4,6,8}.{weight,bias}``, buffers ``mean``, ``std``.
    The mmedit/mmagic SPyNet (BasicVSR++ checkpoints) differs only by a ``.conv`` infix; see
    :func:`convert_mmedit_spynet_keys`.

    Input frames are RGB in [0, 1]; the flow is computed on a grid padded up to a multiple of 32
    (bilinear resize) and resized back, as in the official code.
    """

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList([_SpyNetBasicModule() for _ in range(6)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _process(self, ref: Tensor, supp: Tensor) -> list[Tensor]:
        """The flow after every pyramid level, coarsest first (6 entries, ``(N, 2, H / 2**(5-l), W / 2**(5-l))``)."""
        ref_pyr = [(ref - self.mean) / self.std]
        supp_pyr = [(supp - self.mean) / self.std]
        for _ in range(5):
            ref_pyr.insert(0, F.avg_pool2d(ref_pyr[0], kernel_size=2, stride=2, count_include_pad=False))
            supp_pyr.insert(0, F.avg_pool2d(supp_pyr[0], kernel_size=2, stride=2, count_include_pad=False))
        n, _, h0, w0 = ref_pyr[0].shape
        # The coarsest level starts from a zero flow of its own size. (BasicSR upsamples a zero
        # (h0//2, w0//2) flow: the same zeros, but that fails for a 1-pixel level, i.e. inputs <= 32 px.)
        flow = ref_pyr[0].new_zeros([n, 2, h0, w0])
        flows = []
        for level in range(len(ref_pyr)):
            up = flow if level == 0 else F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            if up.size(2) != ref_pyr[level].size(2):
                up = F.pad(up, [0, 0, 0, 1], mode="replicate")
            if up.size(3) != ref_pyr[level].size(3):
                up = F.pad(up, [0, 1, 0, 0], mode="replicate")
            warped = flow_warp(supp_pyr[level], up.permute(0, 2, 3, 1), interp_mode="bilinear", padding_mode="border")
            flow = self.basic_module[level](torch.cat([ref_pyr[level], warped, up], 1)) + up
            flows.append(flow)
        return flows

    def pyramid(self, ref: Tensor, supp: Tensor, levels: int = 1) -> list[Tensor]:
        """Flows from ``ref`` to ``supp`` at ``levels`` scales, finest first (VRT's ``return_levels``).

        Entry ``i`` is the flow of pyramid level ``5 - i`` resized to ``(H // 2**i, W // 2**i)``
        and rescaled to pixels of that size, as VRT's SpyNet (``return_levels=[2, 3, 4, 5]``).

        Args:
            ref: ``(N, 3, H, W)`` RGB in [0, 1].
            supp: ``(N, 3, H, W)`` RGB in [0, 1].
            levels: how many scales (1 to 6).

        Returns:
            ``levels`` float flows ``(N, 2, H // 2**i, W // 2**i)`` in pixels (``dx``, ``dy``).

        Raises:
            ValueError: if ``ref`` and ``supp`` differ in shape.
        """
        if ref.shape != supp.shape:
            raise ValueError(f"SpyNet: ref {tuple(ref.shape)} and supp {tuple(supp.shape)} differ")
        if torch.is_autocast_enabled(ref.device.type):  # flows stay fp32 under mixed precision
            with torch.autocast(ref.device.type, enabled=False):
                return self.pyramid(ref.float(), supp.float(), levels)
        h, w = ref.shape[-2:]
        w_up = math.floor(math.ceil(w / 32.0) * 32.0)
        h_up = math.floor(math.ceil(h / 32.0) * 32.0)
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flows = self._process(ref, supp)
        out = []
        for i in range(levels):
            s = 2 ** i
            flow = F.interpolate(flows[5 - i], size=(h // s, w // s), mode="bilinear", align_corners=False)
            scale = torch.tensor([(w // s) / (w_up // s), (h // s) / (h_up // s)], dtype=flow.dtype, device=flow.device)
            out.append(flow * scale.view(1, 2, 1, 1))
        return out

    def forward(self, ref: Tensor, supp: Tensor) -> Tensor:
        """Flow from ``ref`` to ``supp`` (warping ``supp`` with it aligns it to ``ref``).

        Args:
            ref: ``(N, 3, H, W)`` RGB in [0, 1].
            supp: ``(N, 3, H, W)`` RGB in [0, 1].

        Returns:
            ``(N, 2, H, W)`` float flow in pixels (``dx``, ``dy``).

        Raises:
            ValueError: if ``ref`` and ``supp`` differ in shape.
        """
        return self.pyramid(ref, supp, 1)[0]


def convert_mmedit_spynet_keys(state_dict: dict[str, Tensor], prefix: str = "spynet.") -> dict[str, Tensor]:
    """Rename mmedit/mmagic SPyNet keys (``...basic_module.{j}.conv.weight``) to BasicSR's.

    Args:
        state_dict: any state dict; only keys starting with ``prefix`` are touched.
        prefix: where the SpyNet lives in the state dict.

    Returns:
        A new dict with ``basic_module.{i}.basic_module.{j}.conv.{weight,bias}`` mapped to
        ``basic_module.{i}.basic_module.{2j}.{weight,bias}`` (mmedit's ConvModule numbers
        only convs; BasicSR's Sequential interleaves ReLUs).
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(prefix) and ".conv." in key:
            head, tail = key[len(prefix):].split(".conv.")
            parts = head.split(".")  # basic_module, i, basic_module, j
            if len(parts) == 4 and parts[0] == parts[2] == "basic_module":
                key = f"{prefix}basic_module.{parts[1]}.basic_module.{int(parts[3]) * 2}.{tail}"
        out[key] = value
    return out
