"""A two-node Ray cluster on this machine (``ray start --head`` + ``ray start --address``), driven
by the CLI's ``--ray HOST:PORT`` (issue 17). Its own module: ``ray stop`` ends every Ray process
here, so it runs after the in-process cluster of test_distributed.py has shut down."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests import cli
from tests.media import describe, make_clip

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_nodes():
    """``(address, env)`` of a head node and a worker node (one CPU each), sharing an auth token."""
    pytest.importorskip("ray", reason="Ray is in the test extra (pip install -e '.[test]')")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = ["--num-cpus", "1", "--disable-usage-stats", "--object-store-memory", str(200 * 2**20),
              "--node-ip-address", "127.0.0.1"]
    try:
        subprocess.run([ray_cli, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
                       check=True, capture_output=True, timeout=120, env=env)
        subprocess.run([ray_cli, "start", "--address", f"127.0.0.1:{port}", *common], check=True,
                       capture_output=True, timeout=120, env=env)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=env)


def test_cli_on_a_two_node_cluster_joins_every_chunk_once(two_nodes, tmp_path):
    src = make_clip(tmp_path / "in.mp4", n=20, size=(48, 32))
    single, dist = tmp_path / "single.mkv", tmp_path / "dist.mkv"
    code, _, err = cli.call(src, single, "-m", "bicubic", "-s", "2", "--codec", "ffv1", "-q")
    assert code == 0, err
    address, env = two_nodes
    r = cli.run(src, dist, "-m", "bicubic", "-s", "2", "--codec", "ffv1", "--ray", address, "--workers", "2",
                "--chunk-frames", "6", env=env, replace_env=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(line.split("chunk ")[1].split()[0] for line in r.stderr.splitlines() if " chunk " in line) == \
        ["0", "1", "2"]  # 20 frames in 6-frame chunks: the tail of 8 stays one chunk
    a, b = describe(single), describe(dist)
    assert a["pts_s"] == b["pts_s"] and a["audio"] == b["audio"] and b["frames"] == 20
    with av.open(str(single)) as x, av.open(str(dist)) as y:
        assert all(np.array_equal(f.to_ndarray(format="rgb24"), g.to_ndarray(format="rgb24"))
                   for f, g in zip(x.decode(video=0), y.decode(video=0)))
