"""RealBasicVSR: an image-cleaning stage, then BasicVSR, for real-world (compressed, noisy) video.

Paper: Kelvin C.K. Chan, Shangchen Zhou, Xiangyu Xu, Chen Change Loy, "Investigating Tradeoffs
in Real-World Video Super-Resolution", CVPR 2022. Official code and checkpoint: open-mmlab/mmagic
(``mmagic/models/editors/real_basicvsr/real_basicvsr_net.py``, Apache-2.0; released as
``realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds_20211104-52f77c2c.pth``). Clean reimplementation
with the same numerics.

Stages: :meth:`RealBasicVSR.clean` runs the cleaning module (residual blocks at LR, predicting a
residue added to every frame) up to three times, stopping as soon as the mean absolute residue
over the clip falls below ``dynamic_refine_thres / 255`` (the official test value is 5, the
training config's 255 means "once"); :class:`~upvid.models.basicvsr.BasicVSR` then
super-resolves the cleaned clip x4. The stopping rule looks at the whole clip, so streamed
clips (``frames``/``overlap`` in ``weights.toml``) may clean a different number of times than
one whole-sequence run; the official inference script (``inference_realbasicvsr.py``) also cuts
long videos into clips (``--max_seq_len``).

Checkpoint conversion (:func:`convert_official`): the exponential-moving-average generator
(``generator_ema.*``, what the official test uses) or else ``generator.*``; mmagic's BasicVSR
names (``backward_resblocks``, ``upsample1.upsample_conv``, ConvModule SpyNet) become upvid's
BasicSR ones; the discriminator and training state are dropped.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from upvid.errors import ModelInputError
from upvid.models.basicvsr import BasicVSR
from upvid.models.blocks import ResidualBlocksWithInputConv
from upvid.models.flow import add_spynet_buffers, convert_mmedit_spynet_keys

__all__ = ["RealBasicVSR", "convert_official"]


class RealBasicVSR(nn.Module):
    """RealBasicVSR x4.

    Args:
        num_feat: channels of the cleaning module and of BasicVSR's propagation (64).
        num_block: residual blocks of each BasicVSR propagation trunk (20).
        num_clean_block: residual blocks of the cleaning module (20).
        dynamic_refine_thres: stop cleaning when the mean absolute residue (0..255 scale) is
            below this (official test: 5).
    """

    def __init__(self, num_feat: int = 64, num_block: int = 20, num_clean_block: int = 20,
                 dynamic_refine_thres: float = 5.0) -> None:
        super().__init__()
        self.dynamic_refine_thres = dynamic_refine_thres / 255.0
        self.image_cleaning = nn.Sequential(
            ResidualBlocksWithInputConv(3, num_feat, num_clean_block),
            nn.Conv2d(num_feat, 3, 3, 1, 1, bias=True),
        )
        self.basicvsr = BasicVSR(num_feat, num_block)

    def clean(self, x: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` -> the cleaned clip, same shape (1 to 3 passes, see the module doc)."""
        b, t, c, h, w = x.shape
        flat = x.reshape(-1, c, h, w)
        for _ in range(3):
            residue = self.image_cleaning(flat)
            flat = flat + residue
            if torch.mean(torch.abs(residue)) < self.dynamic_refine_thres:
                break
        return flat.view(b, t, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        """Clean, then super-resolve a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], ``T >= 1``.

        Returns:
            ``(B, T, 3, 4H, 4W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong shape.
        """
        if x.ndim != 5 or x.shape[2] != 3:
            raise ModelInputError(f"RealBasicVSR: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        return self.basicvsr(self.clean(x))


_MMAGIC_BASICVSR = {
    "basicvsr.backward_resblocks.": "basicvsr.backward_trunk.",
    "basicvsr.forward_resblocks.": "basicvsr.forward_trunk.",
    "basicvsr.upsample1.upsample_conv.": "basicvsr.upconv1.",
    "basicvsr.upsample2.upsample_conv.": "basicvsr.upconv2.",
}


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """mmagic RealBasicVSR checkpoint (``state_dict`` of the restorer) -> ours.

    Args:
        state_dict: keys ``generator_ema.*`` and/or ``generator.*`` (plus ``discriminator.*``,
            ``step_counter``...), or a bare generator's keys.

    Returns:
        A new dict that loads strictly into :class:`RealBasicVSR`.
    """
    prefix = next((p for p in ("generator_ema.", "generator.") if any(k.startswith(p) for k in state_dict)), "")
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, Tensor) or not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if not key.startswith(("image_cleaning.", "basicvsr.")):
            continue
        for old, new in _MMAGIC_BASICVSR.items():
            if key.startswith(old):
                key = new + key[len(old):]
        out[key] = value
    return add_spynet_buffers(convert_mmedit_spynet_keys(out, prefix="basicvsr.spynet."), prefix="basicvsr.spynet.")
