"""Model throughput of upvid's reimplementation against the official code, same weights, same input.

The official architecture file is imported from a checkout outside this repository (never
vendored): BasicSR-style files get a stub ``basicsr`` package (registry decorator; the DCN op
package points at torchvision's deform_conv2d, as BasicSR itself does with torchvision >= 0.9).
Random weights are drawn once for the official network, converted with the model's
``convert_official`` and loaded strictly into upvid's; outputs are compared (max abs error)
and both are timed (warm-up, then median of --repeats).

    python benchmarks/reference_ratio.py --model basicvsr \
        --ref-file /path/to/BasicSR/basicsr/archs/basicvsr_arch.py --ref-class BasicVSR \
        --ref-kwargs '{"num_feat": 64, "num_block": 30}' --input 1x15x3x64x64
    python benchmarks/reference_ratio.py --model realesr-animevideov3 \
        --ref-file /path/to/Real-ESRGAN/realesrgan/archs/srvgg_arch.py --ref-class SRVGGNetCompact \
        --ref-kwargs '{"num_in_ch":3,"num_out_ch":3,"num_feat":64,"num_conv":16,"upscale":4,"act_type":"prelu"}' \
        --input 1x3x180x144
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn


def _stub_basicsr(arch_dir: Path) -> None:
    """A minimal ``basicsr`` package so that ``basicsr/archs/*.py`` import without BasicSR installed."""

    class _Registry:
        def register(self, obj=None, suffix=None):  # noqa: ARG002
            return obj if obj is not None else (lambda o: o)

    def module(name: str, path: list[str] | None = None) -> types.ModuleType:
        m = types.ModuleType(name)
        if path is not None:
            m.__path__ = path
        sys.modules[name] = m
        return m

    module("basicsr", [])
    module("basicsr.utils", [])
    reg = module("basicsr.utils.registry")
    reg.ARCH_REGISTRY = _Registry()
    module("basicsr.utils").get_root_logger = lambda *a, **k: __import__("logging").getLogger("ref")
    ops = module("basicsr.ops", [])
    dcn = module("basicsr.ops.dcn")

    class ModulatedDeformConvPack(nn.Module):  # only its parameters matter: BasicSR calls torchvision
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                     deformable_groups=1, bias=True, **kwargs):  # noqa: ARG002
            super().__init__()
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
            self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
            self.stride, self.padding, self.dilation = stride, padding, dilation
            self.groups, self.deformable_groups = groups, deformable_groups
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k))
            self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
            self.conv_offset = nn.Conv2d(in_channels, deformable_groups * 3 * k[0] * k[1], k, stride, padding, bias=True)
            nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    dcn.ModulatedDeformConvPack = ModulatedDeformConvPack
    dcn.modulated_deform_conv = None
    ops.dcn = dcn
    module("basicsr.archs", [str(arch_dir)])


def load_reference(path: Path, cls: str) -> type[nn.Module]:
    """Import class ``cls`` from the official file ``path`` (as ``basicsr.archs.<stem>``)."""
    _stub_basicsr(path.parent)
    name = f"basicsr.archs.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return getattr(mod, cls)


def timed(fn, x, repeats: int) -> float:
    with torch.inference_mode():
        fn(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    from upvid.models.registry import build_network, get_record, import_object

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="upvid model name")
    ap.add_argument("--ref-file", type=Path, required=True)
    ap.add_argument("--ref-class", required=True)
    ap.add_argument("--ref-kwargs", default="{}")
    ap.add_argument("--input", default="1x5x3x64x64", help="input shape, e.g. 1x15x3x64x64 or 1x3x144x180")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    torch.manual_seed(0)
    dev = torch.device(args.device)
    ref = load_reference(args.ref_file.resolve(), args.ref_class)(**json.loads(args.ref_kwargs)).eval().to(dev)
    rec = get_record(args.model)
    ours = build_network(rec).eval().to(dev)
    sd = {k: v for k, v in ref.state_dict().items()}
    if rec.convert:
        sd = import_object(rec.convert)(sd)
    ours.load_state_dict(sd, strict=True)
    shape = tuple(int(v) for v in args.input.split("x"))
    x = torch.rand(*shape, device=dev)
    with torch.inference_mode():
        y = ours(x)
        err = (ref(x) - y).abs().max().item()
    t_ref = timed(ref, x, args.repeats)
    t_ours = timed(ours, x, args.repeats)
    frames = y.shape[1] if y.ndim == 5 else y.shape[0]  # output frames per call
    result = {"model": args.model, "reference": f"{args.ref_file.name}:{args.ref_class}", "input": list(shape),
              "device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "max_abs_err": err, "reference_fps": frames / t_ref, "upvid_fps": frames / t_ours,
              "ratio_upvid_over_reference": t_ref / t_ours}
    print(f"{args.model}: reference {frames / t_ref:.3f} fps, upvid {frames / t_ours:.3f} fps, "
          f"ratio {t_ref / t_ours:.3f}, max abs err {err:.2e} ({args.input}, {dev})", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
