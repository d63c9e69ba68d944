"""The first five minutes: the README's first command works from a bare copy of the repository,
offline, with the sample clip and the learned model that ship inside the package; `upvid models`
keeps model names whole at 80 columns; the help shows the first commands."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest
import torch
from rich.console import Console

from tests import cli
from tests.data import REPO, WEIGHTS, need
from upvid.errors import WeightsError
from upvid.models import get_record, list_models, load_model
from upvid.models.weights import embedded_path, load_embedded, weights_state

SAMPLE = REPO / "upvid" / "data" / "realshort.mp4"


def _readme_block(tag: str) -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- ci:{tag} -->\s*```bash\n(.*?)```", text, re.S)
    assert m, f"README has no ci:{tag} block"
    return m.group(1).strip()


def _bare_copy(dest: Path) -> Path:
    """The repository's tracked (and not ignored) files, nothing else: no venv, no ../shared."""
    if (REPO / ".git").exists():
        names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.split("\n")
        for name in filter(None, names):
            src = REPO / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    else:  # an sdist or an exported tree
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info"),
                        dirs_exist_ok=True)
    return dest


def _offline_env(tmp: Path, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"UPVID_WEIGHTS_DIR", "UPVID_SHARED_DATA", "HF_ENDPOINT"}}
    dead = "http://127.0.0.1:9"  # the discard port: any network attempt fails at once
    env.update(HF_HOME=str(tmp / "hf"), HF_HUB_OFFLINE="1", HTTP_PROXY=dead, HTTPS_PROXY=dead,
               http_proxy=dead, https_proxy=dead, NO_PROXY="", PYTHONPATH=str(root))
    return env


@pytest.mark.slow
def test_readme_first_command_runs_a_learned_model_from_a_bare_offline_copy(tmp_path):
    """The README's first command, minus its install steps (this environment is installed),
    run in a copy of the repository with no ../shared beside it and every network route
    dead: it upscales the bundled clip with a learned model, keeping the audio."""
    root = _bare_copy(tmp_path / "repo")
    assert not (root.parent / "shared").exists()
    steps = [s.strip() for s in _readme_block("install").split("&&")]
    runs = [s for s in steps if s.startswith("upvid ")]
    assert runs and all(s.startswith(("python3 -m venv", ". .venv", "pip install")) for s in steps if s not in runs)
    assert not any("../shared" in s for s in runs), "the first command must not need the shared data"
    env = _offline_env(tmp_path, root)
    where = subprocess.run([sys.executable, "-c", "import upvid; print(upvid.__file__)"], env=env, cwd=root,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(root.resolve())  # the copy's package, not the checkout's
    for step in runs:
        args = shlex.split(step)[1:]
        r = cli.run(*args, cwd=root, env=env, replace_env=True, timeout=600)
        assert r.returncode == 0, f"{step}: {r.stderr}"
    main = shlex.split(runs[-1])[1:]
    model = main[main.index("--model") + 1]
    assert get_record(model).weights, f"the first command should use a learned model, not {model}"
    out = root / main[1]
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (1280, 960)
        assert sum(1 for _ in c.decode(v)) == 36
        assert len(c.streams.audio) == 1
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.pth"))  # nothing downloaded


def test_the_bundled_sample_and_weights_are_the_documented_files():
    """NOTICE.md gives the sample's sha256 and weights.toml pins the embedded weights' sha256."""
    notice = (REPO / "upvid" / "data" / "NOTICE.md").read_text()
    assert hashlib.sha256(SAMPLE.read_bytes()).hexdigest() in notice
    rec = get_record("rlfn-x4")
    path = embedded_path(rec)
    assert path is not None and path.stat().st_size == rec.embedded["size"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec.embedded["sha256"]
    assert "MIT" in notice and "BSD-2-Clause" in notice


def test_embedded_weights_are_verified_before_use(tmp_path):
    """A wrong pinned sha256 is a WeightsError, never a silently different network."""
    rec = dataclasses.replace(get_record("rlfn-x4"), embedded={**get_record("rlfn-x4").embedded, "sha256": "0" * 64})
    with pytest.raises(WeightsError, match="sha256"):
        load_embedded(rec)


def test_rlfn_runs_offline_from_its_embedded_weights_and_matches_the_fp32_original(tmp_path, monkeypatch):
    """With an empty cache, no weights folder and no network, rlfn-x4 loads the embedded fp16
    copy (upcast to fp32); its output is within fp16 weight rounding of the official fp32
    checkpoint's; after the original is in a weights folder, that one is used."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("UPVID_WEIGHTS_DIR", raising=False)
    rec = get_record("rlfn-x4")
    assert weights_state(rec) == "embedded (fp16)"
    emb = load_model("rlfn-x4")
    assert all(p.dtype == torch.float32 for p in emb.parameters())
    x = torch.rand(1, 1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y_emb = emb(x)
    w = need(WEIGHTS)
    assert weights_state(rec, w) == "cached"
    with torch.no_grad():
        y_ref = load_model("rlfn-x4", weights_dir=w)(x)
    diff = (y_emb - y_ref).abs().max().item()
    assert 0 < diff < 2 / 255, diff  # a different file (fp16), a negligible difference


def _names_in(text: str) -> set[str]:
    return {tok for line in text.splitlines() for tok in re.split(r"[\s│┃|]+", line) if tok}


def test_models_table_keeps_names_whole_at_80_columns():
    """Rendered at 80 columns, every model name appears whole; left-out columns are named."""
    from upvid.cli.models import _COLUMNS, plain_table, render_table

    rows = [{"name": n, "kind": "per-frame", "scale": 4, "weights": "not cached", "params": 1e6,
             "psnr": {"vid4": 27.0}, "degradation": "BI", "license": "MIT", "train_data": "REDS",
             "sources": ["https://github.com/x"], "hash": "pinned"} for n in list_models()]
    for width in (80, 160):
        buf = io.StringIO()
        render_table(rows, Console(file=buf, width=width, force_terminal=False))
        text = buf.getvalue()
        assert max(map(len, text.splitlines())) <= width
        missing = set(list_models()) - _names_in(text)
        assert not missing, f"cut at {width} columns: {missing}"
        if width == 80:
            assert "not shown at this width" in text
    plain = plain_table(rows)
    assert set(list_models()) <= _names_in(plain)
    assert all(head.split()[0] in plain.splitlines()[0] for head, _ in _COLUMNS)


def test_models_to_a_pipe_is_plain_text_with_whole_names(tmp_path):
    """`upvid models | cat`: one line per model, every column, no box drawing."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "COLUMNS": "80"}
    env.pop("UPVID_WEIGHTS_DIR", None)
    r = cli.run("models", env=env, replace_env=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(list_models()) + 1 and "│" not in r.stdout
    assert [line.split()[0] for line in lines[1:]] == list(list_models())
    row = next(line for line in lines if line.startswith("rlfn-x4 "))
    assert "embedded (fp16)" in row


def test_help_shows_the_first_commands():
    for args in (["--help"], ["upscale", "--help"]):
        r = cli.run(*args, timeout=120)
        assert r.returncode == 0, r.stderr
        for example in ("upvid in.mp4 out.mp4 --model rlfn-x4", "upvid models ", "upvid models fetch "):
            assert example in r.stdout, (args, r.stdout[-600:])
