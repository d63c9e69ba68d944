"""Weights: download through huggingface-hub from a local stand-in for the Hub (HF_ENDPOINT),
sha256 verification, safetensors conversion, offline use with a warm cache, local weights folders."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from upvid.errors import WeightsError

from tests import cli


class TinyNet(nn.Module):
    """A per-frame x2 network small enough to serve from a test server."""

    def __init__(self, ch: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, 12, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pixel_shuffle(self.body(x), 2)


def convert_official(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 'official' checkpoint names the body 'net.'; ours 'body.'."""
    return {k.replace("net.", "body.", 1): v for k, v in sd.items()}


class _Hub(http.server.BaseHTTPRequestHandler):
    """Answers like the Hub's /resolve/ endpoint (HEAD + GET, no Xet), and plain /files/ URLs."""

    files: dict[str, bytes] = {}
    hits: list[str] = []

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _lookup(self) -> bytes | None:
        path = self.path.split("?")[0]
        if "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            name = rest.split("/", 1)[1]
            return self.files.get(f"{repo}/{name}")
        if path.startswith("/files/"):
            return self.files.get(path[len("/files/"):])
        return None

    def _headers(self, body: bytes) -> None:
        etag = hashlib.sha256(body).hexdigest()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", "0" * 40)
        self.end_headers()

    def do_HEAD(self) -> None:
        self.hits.append("HEAD " + self.path)
        body = self._lookup()
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self._headers(body)

    def do_GET(self) -> None:
        self.hits.append("GET " + self.path)
        body = self._lookup()
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self._headers(body)
        self.wfile.write(body)


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """A local Hub serving one legacy .pth checkpoint; env pointing upvid and huggingface-hub at it."""
    torch.manual_seed(0)
    net = TinyNet()
    official = {"params": {k.replace("body.", "net.", 1): v for k, v in net.state_dict().items()}}
    pth = tmp_path / "tiny.pth"
    torch.save(official, pth)
    data = pth.read_bytes()
    _Hub.files = {"upvid-test/tiny/tiny_x2.pth": data, "tiny_x2_release.pth": data}
    _Hub.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    sha = hashlib.sha256(data).hexdigest()
    toml = tmp_path / "weights.toml"

    def write_toml(sha256: str = sha) -> None:
        toml.write_text(f"""
[models.tiny]
arch = "tests.test_weights:TinyNet"
convert = "tests.test_weights:convert_official"
family = "sliding-window"
scale = 2
[models.tiny.weights]
repo_id = "upvid-test/tiny"
filename = "tiny_x2.pth"
sha256 = "{sha256}"
key = "params"

[models.tiny-url]
arch = "tests.test_weights:TinyNet"
convert = "tests.test_weights:convert_official"
family = "sliding-window"
scale = 2
[models.tiny-url.weights]
url = "{endpoint}/files/tiny_x2_release.pth"
sha256_prefix = "{sha[:8]}"
key = "params"

[models.tiny-nohash]
arch = "tests.test_weights:TinyNet"
convert = "tests.test_weights:convert_official"
family = "sliding-window"
scale = 2
[models.tiny-nohash.weights]
url = "{endpoint}/files/tiny_x2_release.pth"
key = "params"
""")

    write_toml()
    from upvid.models import registry

    registry._load_toml.cache_clear()
    env = {"UPVID_WEIGHTS_TOML": str(toml), "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": endpoint,
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("UPVID_WEIGHTS_DIR", raising=False)
    yield {"net": net, "sha": sha, "pth": pth, "write_toml": write_toml, "env": env, "tmp": tmp_path}
    server.shutdown()
    registry._load_toml.cache_clear()


def upvid(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return cli.run(*args, env=env or {}, timeout=120)


def test_download_verify_convert_and_load_strict(hub):
    from upvid.models import load_model
    from upvid.models.weights import converted_dir

    model = load_model("tiny")
    x = torch.rand(1, 1, 3, 8, 8)
    assert torch.allclose(model(x)[:, 0], hub["net"](x[:, 0]))  # the served weights, not random ones
    assert any(h.startswith("GET /upvid-test/tiny/resolve/") for h in _Hub.hits)
    blobs = list((hub["tmp"] / "hf" / "hub").rglob("tiny_x2.pth"))
    assert blobs, "downloaded into the huggingface-hub cache"
    converted = list(converted_dir().glob("tiny-*.safetensors"))
    assert len(converted) == 1
    # second load: from the converted safetensors, no new download
    n = sum(h.startswith("GET") for h in _Hub.hits)
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        model2 = load_model("tiny")
    finally:
        del os.environ["HF_HUB_OFFLINE"]
    assert sum(h.startswith("GET") for h in _Hub.hits) == n
    assert torch.equal(model2(x), model(x))


def test_cli_fetch_then_offline_run(hub, calendar_clip, tmp_path):
    env = hub["env"]
    r = upvid("models", "--json", env=env)
    assert {row["name"]: row["weights"] for row in json.loads(r.stdout)}["tiny"] == "not cached"
    r = upvid("models", "fetch", "tiny", env=env)
    assert r.returncode == 0, r.stderr
    r = upvid("models", "--json", env=env)
    assert {row["name"]: row["weights"] for row in json.loads(r.stdout)}["tiny"] == "cached"
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there
    out = tmp_path / "o.mp4"
    r = upvid(str(calendar_clip), str(out), "--model", "tiny", "-q", env=offline)
    assert r.returncode == 0, r.stderr
    assert out.exists()


def test_sha256_mismatch_is_a_clear_error(hub, calendar_clip, tmp_path):
    wrong = "f" * 64
    hub["write_toml"](wrong)
    r = upvid(str(calendar_clip), str(tmp_path / "o.mp4"), "--model", "tiny", env=hub["env"])
    assert r.returncode == 6
    assert "tiny_x2.pth" in r.stderr and wrong in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_corrupt_cache_is_downloaded_again(hub):
    from upvid.models import get_record
    from upvid.models.weights import fetch

    fetch(get_record("tiny"))
    for blob in (hub["tmp"] / "hf" / "hub").rglob("*"):
        if blob.is_file() and not blob.is_symlink() and blob.stat().st_size > 1000:
            blob.write_bytes(b"corrupt" * 10)
    for f in (hub["tmp"] / "hf" / "upvid" / "converted").glob("*"):
        f.unlink()
    gets = sum(h.startswith("GET") for h in _Hub.hits)
    fetch(get_record("tiny"))
    assert sum(h.startswith("GET") for h in _Hub.hits) == gets + 1


def test_missing_offline_names_file_and_hash(hub):
    from upvid.models import get_record
    from upvid.models.weights import fetch

    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        with pytest.raises(WeightsError, match=r"tiny_x2\.pth.*HF_HUB_OFFLINE.*" + hub["sha"]):
            fetch(get_record("tiny"))
    finally:
        del os.environ["HF_HUB_OFFLINE"]


def test_url_source_with_sha256_prefix(hub, caplog):
    """A file verified only by the 8-hex prefix its name publishes (BasicSR, MMEditing) loads, and
    the download prints its full sha256 to pin (issue 22: a prefix is cheap to forge)."""
    from upvid.models import load_model

    model = load_model("tiny-url")
    x = torch.rand(1, 1, 3, 8, 8)
    assert torch.allclose(model(x)[:, 0], hub["net"](x[:, 0]))
    assert any(h.startswith("GET /files/tiny_x2_release.pth") for h in _Hub.hits)
    assert f"its full sha256 is {hub['sha']}" in caplog.text


def test_unhashed_source_loads_with_a_warning_naming_its_sha256(hub, caplog):
    """Upstreams that publish no hash (RVRT releases, Drive folders): load, but say what was loaded."""
    from upvid.models import load_model

    with caplog.at_level("WARNING", logger="upvid"):
        load_model("tiny-nohash")
    assert any("no published sha256" in r.message and hub["sha"] in r.getMessage() for r in caplog.records)


def test_weights_dir_is_searched_first_and_verified(hub, tmp_path):
    from upvid.models import load_model

    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "tiny_x2.pth").write_bytes(hub["pth"].read_bytes())
    load_model("tiny", weights_dir=folder)
    assert not _Hub.hits  # nothing downloaded
    (folder / "tiny_x2.pth").write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="does not match expected sha256"):
        load_model("tiny", weights_dir=folder)


def test_strict_loading_rejects_missing_keys(hub, tmp_path):
    from upvid.models import load_model

    bad = {"params": {"net.0.weight": torch.zeros(4, 3, 3, 3)}}
    folder = tmp_path / "w"
    folder.mkdir()
    torch.save(bad, folder / "tiny_x2.pth")
    hub["write_toml"](hashlib.sha256((folder / "tiny_x2.pth").read_bytes()).hexdigest())
    from upvid.models import registry

    registry._load_toml.cache_clear()
    with pytest.raises(WeightsError, match="Missing key"):
        load_model("tiny", weights_dir=folder)


def test_weights_toml_found_in_checkout_and_wheel(tmp_path):
    """weights.toml lives at the repo root and ships inside the wheel as upvid/weights.toml,
    with the embedded weights and the sample clip (upvid/data/)."""
    import zipfile

    from upvid.models.registry import weights_toml_path

    repo = Path(__file__).resolve().parents[1]
    assert "UPVID_WEIGHTS_TOML" not in os.environ or pytest.skip("UPVID_WEIGHTS_TOML set")
    assert weights_toml_path() == repo / "weights.toml"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(repo)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("upvid-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert z.read("upvid/weights.toml") == (repo / "weights.toml").read_bytes()
        for name in ("rlfn-x4.fp16.safetensors", "realshort.mp4", "NOTICE.md"):
            assert z.read(f"upvid/data/{name}") == (repo / "upvid" / "data" / name).read_bytes()
        z.extractall(tmp_path / "site")
    code = "from upvid.models.registry import weights_toml_path as p; print(p())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert r.stdout.strip() == str(tmp_path / "site" / "upvid" / "weights.toml"), r.stderr


@pytest.mark.parametrize("damage", ["zeroed", "bitflip", "truncated", "bad-header", "no-sidecar"])
def test_damaged_converted_cache_is_converted_again(hub, caplog, damage):
    """A converted .safetensors whose bytes changed is never used: its sha256 sidecar does not match
    (or is missing), so upvid warns and converts again from the verified original (issue 14)."""
    from upvid.models import weights
    from upvid.models.registry import get_record

    rec = get_record("tiny")
    want = weights.resolve_state_dict(rec)
    target = weights.converted_path(rec, hub["sha"])
    side = target.with_name(target.name + ".sha256")
    assert side.read_text().split()[0] == weights.sha256_file(target)
    data = bytearray(target.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    if damage == "zeroed":
        data[header:] = bytes(len(data) - header)
    elif damage == "bitflip":
        data[header + 5] ^= 0x10
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bad-header":
        data[8:12] = b"\xff\xfe{["
    else:
        side.unlink()
    target.write_bytes(bytes(data))
    caplog.clear()
    got = weights.resolve_state_dict(rec)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert "converting again" in caplog.text
    assert side.read_text().split()[0] == weights.sha256_file(target)  # rewritten whole


def test_unwritable_caches_are_one_line_errors_or_warnings(hub, calendar_clip, tmp_path):
    """HF_HOME that is a file: a download is exit 6 naming the folder; with --weights-dir the job
    runs (the converted copy stays in memory, with a warning). Never an internal error."""
    hf = tmp_path / "hf-file"
    hf.write_text("not a folder")
    env = dict(hub["env"], HF_HOME=str(hf))
    r = upvid(str(calendar_clip), str(tmp_path / "a.mp4"), "--model", "tiny", env=env)
    assert r.returncode == 6 and "cannot write the weights cache" in r.stderr and str(hf) in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "tiny_x2.pth").write_bytes(hub["pth"].read_bytes())
    r = upvid(str(calendar_clip), str(tmp_path / "b.mp4"), "--model", "tiny", "--weights-dir", str(folder), env=env)
    assert r.returncode == 0 and "cannot cache converted weights" in r.stderr, r.stderr
    assert (tmp_path / "b.mp4").is_file()


@pytest.mark.parametrize("text,says", [
    ("this is = not toml [", "not a readable weights.toml"),
    ("[models.x]\nfamily = 'recurrent'\nscale = 4\n", "not a model record"),
    ("[models.x]\narch = 'a:b'\nfamily = 'recurrent'\nscale = 'four'\n", "wrong type for scale"),
    (None, "no such file"),
])
def test_broken_weights_toml_is_exit_2(tmp_path, calendar_clip, text, says):
    toml = tmp_path / "w.toml"
    if text is not None:
        toml.write_text(text)
    r = upvid(str(calendar_clip), str(tmp_path / "o.mp4"), "--model", "rlfn-x4", env={"UPVID_WEIGHTS_TOML": str(toml)})
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("payload", ["tensor", "list", "params-tensor"])
def test_checkpoint_that_is_not_a_state_dict_is_exit_6(hub, calendar_clip, tmp_path, payload):
    """A checkpoint holding a tensor or a list (or a 'params' entry that is one) is a one-line
    weights error, for a registry model and for --model PATH."""
    obj = {"tensor": torch.zeros(3), "list": [torch.zeros(3)], "params-tensor": {"params": torch.zeros(3)}}[payload]
    pth = tmp_path / "odd.pth"
    torch.save(obj, pth)
    toml = hub["tmp"] / "weights.toml"
    toml.write_text(toml.read_text().replace(f'sha256 = "{hub["sha"]}"\nkey = "params"',
                                             f'sha256 = "{hashlib.sha256(pth.read_bytes()).hexdigest()}"'))
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "tiny_x2.pth").write_bytes(pth.read_bytes())
    from upvid.models import registry

    registry._load_toml.cache_clear()
    rc, _, err = cli.call(str(calendar_clip), str(tmp_path / "a.mp4"), "--model", "tiny", "--weights-dir", str(folder))
    assert rc == 6 and len(err.strip().splitlines()) == 1, err
    assert ("not a state dict" if payload != "params-tensor" else "does not match the network") in err
    rc, _, err = cli.call(str(calendar_clip), str(tmp_path / "b.mp4"), "--model", str(pth))
    assert rc == 6 and len(err.strip().splitlines()) == 1, err


def test_a_refused_download_is_one_line_without_huggingface_hub_retry_lines(tmp_path, calendar_clip):
    """huggingface_hub's http_get logs each retry ("Error while downloading ... Trying to resume
    download...", five times, twice each); upvid's stderr is its own one line, naming the
    --weights-dir folder it looked in (issue 22)."""
    toml = tmp_path / "w.toml"
    toml.write_text('[models.dead]\narch = "tests.test_weights:TinyNet"\nfamily = "sliding-window"\nscale = 2\n'
                    '[models.dead.weights]\nurl = "http://127.0.0.1:9/dead.pth"\nsha256 = "' + "0" * 64 + '"\n')
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "other.pth").write_bytes(b"not it")
    r = upvid(str(calendar_clip), str(tmp_path / "o.mp4"), "--model", "dead", "--weights-dir", str(folder),
              env={"UPVID_WEIGHTS_TOML": str(toml), "HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 6 and "Connection refused" in r.stderr, r.stderr
    assert f"not in {folder} (as dead.pth)" in r.stderr  # the folder searched is named
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("upvid: error: cannot get dead.pth"), r.stderr
