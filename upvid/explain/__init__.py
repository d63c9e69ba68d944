"""``upvid explain``: where in the LR input frames a model's output patch comes from.

- :mod:`upvid.explain.lam`: Local Attribution Maps (Gu and Dong, "Interpreting Super-Resolution
  Networks with Local Attribution Maps", CVPR 2021): path-integrated gradients along a
  progressive-blur path, the diffusion index, and (for video) the share of each input frame.
- :mod:`upvid.explain.figure`: the PNG (LR frame strip with the heat map, the patch marked).
"""

from upvid.explain.lam import Attribution, blur_path, diffusion_index, gini, gradient_objective, local_attribution

__all__ = ["Attribution", "blur_path", "diffusion_index", "gini", "gradient_objective", "local_attribution"]
