"""Download sources tried in order (issue 13): Google Drive through gdown, against a local stand-in
that answers like Drive (a confirm page, then the file; a quota page; 404), a Git LFS media URL,
resume of a partial download, offline use, one-line failures naming every source; and
`upvid --model iart` end to end from the Drive stand-in with a full-size official-layout checkpoint.

The stand-in is one loopback HTTP server. gdown reaches it as the HTTPS proxy (``HTTPS_PROXY``) for ``drive.google.com`` and ``drive.usercontent.google.com``: it accepts
the CONNECT tunnel and answers over TLS with a self-signed certificate that requests trusts through
``REQUESTS_CA_BUNDLE``. The LFS URL points at it directly (plain http on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest
import torch

from tests import cli
from tests.test_weights import TinyNet
from upvid.errors import WeightsError

CONFIRM = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">\
<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="{id}">\
<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">\
<input type="hidden" name="uuid" value="5d1f3c2a-0000-4000-8000-000000000000"></form></body></html>"""  # one line, as Drive sends it

QUOTA = """<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>
<p class="uc-error-caption">Sorry, you can't view or download this file at this time.</p>
<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try accessing the file again later.</p>
</body></html>"""


class _Drive(http.server.BaseHTTPRequestHandler):
    """Drive's two hosts (reached as a proxy) and a Git LFS media host (reached directly)."""

    files: dict[str, bytes] = {}     # Drive file id -> bytes
    lfs: dict[str, bytes] = {}       # path -> bytes
    quota: set[str] = set()          # ids that answer with the quota page
    folders: dict[str, dict[str, str]] = {}  # folder id -> {file name: file id}
    hits: list[str] = []
    ranges: list[str] = []

    tls: ssl.SSLContext | None = None  # serves the tunnelled hosts with a test certificate
    tunnel_host: str | None = None

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:
        """A proxy tunnel to ``host:443``: answer 200, then speak TLS on the same socket as that host."""
        host = self.path.split(":")[0]
        self.hits.append(f"CONNECT {host}")
        self.send_response(200, "Connection established")
        self.end_headers()
        self.connection = self.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        self.wfile = self.connection.makefile("wb", 0)
        self.tunnel_host = host
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _file(self, body: bytes, name: str) -> None:
        rng = self.headers.get("Range")
        if rng:
            self.ranges.append(rng)
            start = int(rng.removeprefix("bytes=").split("-")[0])
            part = body[start:]
            self.send_response(206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Disposition", f'attachment; filename="{name}"')
            self.end_headers()
            self.wfile.write(part)
            return
        self._send(200, body, "application/octet-stream", {"Content-Disposition": f'attachment; filename="{name}"'})

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        host = self.tunnel_host or url.hostname or self.headers.get("Host", "").split(":")[0]
        query = urllib.parse.parse_qs(url.query)
        self.hits.append(f"{host}{url.path}?{url.query}")
        fid = (query.get("id") or [""])[0]
        if host == "drive.google.com" and url.path == "/uc":
            if fid in self.quota:
                return self._send(200, QUOTA.encode(), "text/html; charset=utf-8")
            if fid not in self.files:
                return self._send(404, b"<html><body>Not Found</body></html>", "text/html; charset=utf-8")
            return self._send(200, CONFIRM.format(id=fid).encode(), "text/html; charset=utf-8")
        if host == "drive.usercontent.google.com" and url.path == "/download" and query.get("confirm") == ["t"]:
            if fid in self.files:
                return self._file(self.files[fid], f"{fid}.pth")
        if host == "drive.google.com" and url.path == "/embeddedfolderview" and fid in self.folders:
            links = "".join(f'<div class="flip-entry"><a href="https://drive.google.com/file/d/{i}/view?usp=drive_web" '
                            f'target="_blank"><div class="flip-entry-title">{n}</div></a></div>'
                            for n, i in self.folders[fid].items())
            page = f"<!DOCTYPE html><html><head><title>pretrained</title></head><body>{links}</body></html>"
            return self._send(200, page.encode(), "text/html; charset=utf-8")
        if url.path in self.lfs:
            return self._file(self.lfs[url.path], url.path.rsplit("/", 1)[-1])
        self._send(404, b"not found", "text/plain")


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for Drive's two host names (trusted through REQUESTS_CA_BUNDLE)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: it makes the stand-in's TLS certificate")
    cert, key = folder / "drive.pem", folder / "drive.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=drive.google.com",
                    "-addext", "subjectAltName=DNS:drive.google.com,DNS:drive.usercontent.google.com"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture()
def drive(tmp_path, monkeypatch):
    """The stand-in server, a tiny official-layout checkpoint, and a registry naming Drive + LFS sources."""
    cert, key = _certificate(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    _Drive.tls = ctx
    torch.manual_seed(0)
    net = TinyNet()
    pth = tmp_path / "tiny.pth"
    torch.save({"params": {k.replace("body.", "net.", 1): v for k, v in net.state_dict().items()}}, pth)
    data = pth.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    _Drive.files, _Drive.lfs, _Drive.quota, _Drive.hits, _Drive.ranges = {}, {}, set(), [], []
    _Drive.folders = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Drive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    toml = tmp_path / "weights.toml"

    def record(name: str, sources: list[str], sha256: str = sha, size: int = len(data)) -> str:
        return f"""
[models.{name}]
arch = "tests.test_weights:TinyNet"
convert = "tests.test_weights:convert_official"
family = "sliding-window"
scale = 2
[models.{name}.weights]
filename = "tiny_x2.pth"
sources = [{", ".join(sources)}]
size = {size}
sha256 = "{sha256}"
key = "params"
"""

    lfs = f'{{ url = "{base}/media/owner/repo/0000/tiny_x2.pth" }}'
    toml.write_text(
        record("tiny-drive", ['{ drive = "GOODID" }', lfs])
        + record("tiny-quota", ['{ drive = "QUOTAID" }', lfs])
        + record("tiny-dead", ['{ drive = "QUOTAID" }', '{ drive = "GONEID" }',
                               f'{{ url = "{base}/media/owner/repo/0000/missing.pth" }}'])
        + record("tiny-wrong", ['{ drive = "GOODID" }'], sha256="0" * 64)
        + record("tiny-folder", ['{ drive_folder = "FOLDERID" }'])
    )
    from upvid.models import registry

    registry._load_toml.cache_clear()
    env = {"UPVID_WEIGHTS_TOML": str(toml), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HTTPS_PROXY": base, "NO_PROXY": "127.0.0.1,localhost", "REQUESTS_CA_BUNDLE": str(cert),
           "HF_HUB_OFFLINE": "0"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("UPVID_WEIGHTS_DIR", raising=False)
    yield {"net": net, "data": data, "sha": sha, "base": base, "env": env, "tmp": tmp_path}
    server.shutdown()
    registry._load_toml.cache_clear()


def test_drive_confirm_page_then_file(drive):
    from upvid.models import load_model

    _Drive.files["GOODID"] = drive["data"]
    model = load_model("tiny-drive")
    x = torch.rand(1, 1, 3, 8, 8)
    assert torch.allclose(model(x)[:, 0], drive["net"](x[:, 0]))
    assert [h.split("?")[0] for h in _Drive.hits] == ["CONNECT drive.google.com", "drive.google.com/uc",
                                                       "CONNECT drive.usercontent.google.com",
                                                       "drive.usercontent.google.com/download"]
    cached = list((drive["tmp"] / "hf" / "upvid" / "downloads").iterdir())
    assert [f.name for f in cached] == [f"{drive['sha'][:16]}-tiny_x2.pth"]


def test_quota_page_falls_back_to_the_lfs_copy(drive):
    from upvid.models import load_model

    _Drive.quota.add("QUOTAID")
    _Drive.lfs["/media/owner/repo/0000/tiny_x2.pth"] = drive["data"]
    load_model("tiny-quota")
    assert [h.split("?")[0] for h in _Drive.hits] == ["CONNECT drive.google.com", "drive.google.com/uc",
                                                       "127.0.0.1/media/owner/repo/0000/tiny_x2.pth"]


def test_every_source_failing_is_one_line_naming_each(drive, tmp_path):
    _Drive.quota.add("QUOTAID")
    clip = tmp_path / "in.mp4"
    from tests.media import make_clip

    make_clip(clip, n=2)
    r = cli.run(clip, tmp_path / "o.mp4", "-m", "tiny-dead", "-q", env=drive["env"], timeout=120)
    assert r.returncode == 6, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    msg = lines[0]
    assert "tiny_x2.pth" in msg and drive["sha"] in msg
    assert "Google Drive file QUOTAID: Drive quota exceeded" in msg
    assert "Google Drive file GONEID: Drive gave no download link" in msg
    assert "missing.pth: HTTP 404" in msg
    assert "https://drive.google.com/file/d/QUOTAID/view" in msg and "--weights-dir" in msg
    assert not (tmp_path / "o.mp4").exists()


def test_hash_mismatch_is_refused_and_not_cached(drive):
    from upvid.models import get_record
    from upvid.models.weights import fetch

    _Drive.files["GOODID"] = drive["data"]
    with pytest.raises(WeightsError, match=r"Google Drive file GOODID: sha256 " + drive["sha"] + " does not match"):
        fetch(get_record("tiny-wrong"))
    assert not list((drive["tmp"] / "hf" / "upvid" / "downloads").glob("*tiny_x2.pth"))


def test_partial_download_is_resumed(drive):
    from upvid.models import get_record
    from upvid.models.weights import _download_dest, fetch, file_specs

    _Drive.quota.add("QUOTAID")
    _Drive.lfs["/media/owner/repo/0000/tiny_x2.pth"] = drive["data"]
    dest = _download_dest(file_specs(get_record("tiny-quota"))[0], "tiny_x2.pth")
    dest.parent.mkdir(parents=True)
    half = len(drive["data"]) // 2
    dest.with_name(dest.name + ".part").write_bytes(drive["data"][:half])
    fetch(get_record("tiny-quota"))
    assert _Drive.ranges == [f"bytes={half}-"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == drive["sha"]


def test_offline_never_touches_the_network(drive, monkeypatch):
    from upvid.models import get_record
    from upvid.models.weights import fetch

    _Drive.files["GOODID"] = drive["data"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        fetch(get_record("tiny-drive"))
    assert _Drive.hits == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    fetch(get_record("tiny-drive"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for f in (drive["tmp"] / "hf" / "upvid" / "converted").glob("*"):
        f.unlink()  # the raw download is cached too: re-converted offline
    n = len(_Drive.hits)
    fetch(get_record("tiny-drive"))
    assert len(_Drive.hits) == n


@pytest.mark.slow
def test_iart_end_to_end_from_the_drive_stand_in(drive, tmp_path):
    """`upvid IN OUT --model iart --scale 4` with the shipped `iart` record and its Drive file id;
    the stand-in serves a full-size checkpoint in the official layout (random weights, wrapped in
    ``params``); its size and sha256 replace the pinned ones in a copy of the registry. Then the
    same command offline, from the cache."""
    from tests.media import describe
    from tests.test_zoo_e2e import make_tiny_clip
    from upvid.models import registry
    from upvid.models.iart import IART

    shipped = Path(__file__).resolve().parents[1] / "weights.toml"
    torch.manual_seed(0)
    sd = IART(**registry._load_toml(str(shipped))["iart"].kwargs).state_dict()
    official_keys = json.loads((Path(__file__).parent / "fixtures" / "iart" / "official_keys.json").read_text())
    assert set(sd) == set(official_keys)
    pth = tmp_path / "IART_REDS_BI_N16.pth"
    torch.save({"params": sd}, pth)
    data = pth.read_bytes()
    _Drive.files["14Pn3uCJ5IvkLJD7HPPqXbV1Si43FV2k2"] = data
    text = shipped.read_text()
    pinned = 'size = 150729093\nsha256 = "ba44d7204fec351d8a591f63e32d75f361ffeb1bfb76bab57b2b9bcf7d05198a"'
    assert text.count(pinned) == 1  # the iart record's pinned size and sha256
    toml = tmp_path / "weights.toml"
    toml.write_text(text.replace(pinned, f'size = {len(data)}\nsha256 = "{hashlib.sha256(data).hexdigest()}"', 1))
    env = {**os.environ, **drive["env"], "UPVID_WEIGHTS_TOML": str(toml)}
    clip = make_tiny_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "out.mp4"
    opts = ["--model", "iart", "--scale", "4", "--chunk", "2", "-q"]
    r = cli.run(clip, out, *opts, env=env, replace_env=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "drive.usercontent.google.com/download" in [h.split("?")[0] for h in _Drive.hits]
    src, dst = describe(clip), describe(out)
    assert dst["size"] == (src["size"][0] * 4, src["size"][1] * 4) and dst["frames"] == src["frames"] == 3
    n = len(_Drive.hits)
    offline = {**env, "HF_HUB_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9"}  # nothing listens there
    r = cli.run(clip, tmp_path / "out2.mp4", *opts, "--frames", "0:1", env=offline, replace_env=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert len(_Drive.hits) == n


def test_drive_folder_is_listed_and_the_file_taken_by_name(drive):
    """A record with only a Drive folder (IART's Vimeo-90K files, PSRT): gdown lists the folder,
    upvid downloads the entry named like the record's file."""
    from upvid.models import get_record
    from upvid.models.weights import fetch

    good, other = "1" + "g" * 32, "1" + "o" * 32  # Drive ids are 33 characters
    _Drive.folders["FOLDERID"] = {"other.pth": other, "tiny_x2.pth": good}
    _Drive.files[good] = drive["data"]
    fetch(get_record("tiny-folder"))
    got = [h.split("?")[0] for h in _Drive.hits if not h.startswith("CONNECT")]
    assert got == ["drive.google.com/embeddedfolderview", "drive.google.com/uc", "drive.usercontent.google.com/download"]
    assert any(f"id={good}" in h for h in _Drive.hits) and not any(f"id={other}" in h for h in _Drive.hits)


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return cli.run(*args, env=env, timeout=120)


@pytest.mark.slow  # every download source, end to end
def test_models_shows_sources_fetch_all_and_verify_refetches_a_tampered_file(drive):
    _Drive.files["GOODID"] = drive["data"]
    _Drive.quota.add("QUOTAID")
    _Drive.lfs["/media/owner/repo/0000/tiny_x2.pth"] = drive["data"]
    rows = {r["name"]: r for r in json.loads(_cli("models", "--json", env=drive["env"]).stdout)}
    assert rows["tiny-quota"]["sources"] == ["Google Drive file QUOTAID", f"{drive['base']}/media/owner/repo/0000/tiny_x2.pth"]
    assert rows["tiny-drive"]["hash"] == "pinned" and rows["tiny-drive"]["weights"] == "not cached"
    r = _cli("models", "fetch", "tiny-drive", "tiny-quota", env=drive["env"])
    assert r.returncode == 0, r.stderr
    assert _cli("models", "fetch", env=drive["env"]).returncode == 2  # neither names nor --all
    r = _cli("models", "verify", "tiny-drive", env=drive["env"])
    assert r.returncode == 0 and "tiny-drive: ok" in r.stderr, r.stderr
    cached = next((drive["tmp"] / "hf" / "upvid" / "downloads").glob("*tiny_x2.pth"))
    cached.write_bytes(b"tampered" + cached.read_bytes()[8:])
    n = sum("download" in h for h in _Drive.hits)
    r = _cli("models", "verify", "tiny-drive", env=drive["env"])
    assert r.returncode == 0 and "tiny-drive: re-fetched" in r.stderr, r.stderr
    assert sum("download" in h for h in _Drive.hits) > n
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == drive["sha"]
    r = _cli("models", "fetch", "--all", env=drive["env"])  # tiny-dead and tiny-wrong cannot be had
    assert r.returncode == 6 and "cannot get tiny_x2.pth" in r.stderr
