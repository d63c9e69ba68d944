"""``benchmarks/gpu_check.py --dry-run``: the GPU check's code paths (precision per model, planner,
OOM back-off, the colour path, throughput) on tiny CPU inputs, so the one-command check a GPU
machine runs is known to work before a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.data import REPO


@pytest.mark.slow  # every GPU check on CPU, in a child process
def test_gpu_check_dry_run_passes_every_check(tmp_path):
    out = tmp_path / "check.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads(out.read_text())
    checks = {c["check"]: c for c in report["checks"]}
    assert report["dry_run"] and all(c["ok"] is not False for c in checks.values())
    for name in ("basicvsrpp", "rvrt", "iart", "edvr-m"):  # bf16 autocast against fp32, per model
        assert checks[f"precision {name}"]["psnr_bfloat16_vs_fp32"] >= 35
    assert checks["oom back-off"]["retries"] >= 1 and checks["oom back-off"]["frames"] == 4
    assert abs(checks["colour path"]["mean_luma_out"] - checks["colour path"]["mean_luma_in"]) < 0.25
    assert checks["throughput basicvsrpp"]["model_only_fps"] > 0
