"""Checkpoints: ``weights.toml`` record -> download (huggingface-hub) -> sha256 -> safetensors.

A ``[models.NAME.weights]`` table names one checkpoint file::

    repo_id = "owner/repo"      # on the Hugging Face Hub (downloaded with hf_hub_download) ...
    filename = "net.pth"        #   ... this file (also the name looked up in a --weights-dir)
    revision = "main"           #   optional
    url = "https://..."         # ... or a plain URL (GitHub release), cached next to the Hub cache
    sha256 = "..."              # full digest of the file as published (verified)
    sha256_prefix = "db622b2f"  # when only the digest prefix embedded in the file name is known
    also_sha256 = ["..."]       # other byte-copies whose tensors were verified identical
    local_names = ["a.pth"]     # other names the same file is known by in a --weights-dir
    format = "pth"              # "pth" (converted once) or "safetensors"
    key = "params"              # the wrapper key inside the .pth ("params", "params_ema", "state_dict")
    strip_prefix = "generator." # prefix removed from every key
    license = "..."             # optional: licence of the weights themselves

An optional sub-table (e.g. ``[models.NAME.weights.spynet]``, with the same fields plus
``prefix = "spynet."``) names an auxiliary checkpoint whose keys are added under ``prefix`` when
the main file lacks them (a separately published flow network).

Resolution order for each file: a local ``weights_dir`` (option ``--weights-dir`` or
``$UPVID_WEIGHTS_DIR``), then the Hub cache / download (``HF_HUB_OFFLINE=1`` uses only the
cache; ``HF_ENDPOINT`` selects the server). Every file is verified by sha256 before it is read.
A ``.pth`` is read once with ``torch.load(weights_only=True)`` (never unpickling arbitrary
objects), unwrapped, passed through the model's ``convert`` function (official keys -> ours)
and written as safetensors to ``$HF_HOME/upvid/converted/``; later runs load that safetensors.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from upvid.errors import UsageError, WeightsError
from upvid.models.registry import ModelRecord, import_object
from upvid.models.sources import Source, SourceFailed, fetch_from, sources_of

log = logging.getLogger("upvid")

_FILE_FIELDS = {
    "repo_id", "filename", "revision", "url", "sha256", "sha256_prefix", "also_sha256", "local_names",
    "format", "key", "strip_prefix", "license", "prefix", "size", "note", "source", "mirror_of", "sources",
}


def _hf_home() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HOME", constants.HF_HOME))


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (read at call time)."""
    return Path(os.environ["HF_HUB_CACHE"]) if os.environ.get("HF_HUB_CACHE") else _hf_home() / "hub"


def converted_dir() -> Path:
    """Where converted safetensors live: ``$HF_HOME/upvid/converted``."""
    return _hf_home() / "upvid" / "converted"


def url_cache_dir() -> Path:
    """Where plain-URL downloads live: ``$HF_HOME/upvid/downloads``."""
    return _hf_home() / "upvid" / "downloads"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_specs(record: ModelRecord) -> list[dict[str, Any]]:
    """The main checkpoint spec followed by auxiliary ones (sub-tables), as plain dicts."""
    if not record.weights:
        return []
    main = {k: v for k, v in record.weights.items() if not isinstance(v, dict)}
    aux = [dict(v, _part=k) for k, v in record.weights.items() if isinstance(v, dict)]
    return [main, *aux]


def _file_name(spec: dict[str, Any]) -> str:
    if spec.get("filename"):
        return Path(spec["filename"]).name
    if spec.get("url"):
        return spec["url"].rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    raise WeightsError("weights record names neither filename nor url")


def _expected(spec: dict[str, Any]) -> str:
    if spec.get("sha256"):
        return f"sha256 {spec['sha256']}"
    if spec.get("sha256_prefix"):
        return f"sha256 prefix {spec['sha256_prefix']}"
    return "no published sha256"


def verify(path: Path, spec: dict[str, Any], *, quiet: bool = False) -> str:
    """Check ``path`` against the spec's sha256 (or accepted copies / prefix).

    Returns:
        The file's full hex sha256.

    Raises:
        WeightsError: on mismatch, naming the file and the expected digest.
    """
    digest = sha256_file(path)
    accepted = [spec["sha256"]] if spec.get("sha256") else []
    accepted += list(spec.get("also_sha256", []))
    if accepted:
        if digest not in accepted:
            raise WeightsError(f"{path}: sha256 {digest} does not match expected {_expected(spec)}")
    elif spec.get("sha256_prefix"):
        if not digest.startswith(spec["sha256_prefix"]):
            raise WeightsError(f"{path}: sha256 {digest} does not match expected {_expected(spec)}")
    elif not quiet:  # upstream publishes no hash (RVRT releases, PSRT Drive folders): say what we loaded
        log.warning("%s: no published sha256 to verify against; this file's sha256 is %s "
                    "(pin it as sha256 in weights.toml once you trust it)", path.name, digest)
    return digest


def _find_local(spec: dict[str, Any], weights_dir: Path) -> Path | None:
    for name in [_file_name(spec), *spec.get("local_names", [])]:
        candidate = weights_dir / name
        if candidate.is_file():
            return candidate
    return None


def check_weights_dir(weights_dir: Path | None) -> None:
    """Refuse a ``--weights-dir`` / ``$UPVID_WEIGHTS_DIR`` that is not a folder (it would be
    ignored silently, and the download it falls back to would never name it).

    Raises:
        UsageError: the folder does not exist.
    """
    if weights_dir is not None and not Path(weights_dir).is_dir():
        raise UsageError(f"--weights-dir {weights_dir}: no such folder")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _download_dest(spec: dict[str, Any], name: str) -> Path:
    """Cache path of a non-Hub download: ``$HF_HOME/upvid/downloads/<hash tag>-<name>``."""
    tag = spec.get("sha256") or spec.get("sha256_prefix")
    if not tag:
        first = spec.get("url") or next((next(iter(e.values())) for e in spec.get("sources", [])), name)
        tag = hashlib.sha256(str(first).encode()).hexdigest()
    return url_cache_dir() / f"{tag[:16]}-{name}"


def _cached(spec: dict[str, Any], name: str, sources: list[Source]) -> Path | None:
    dest = _download_dest(spec, name)
    if dest.is_file():
        return dest
    for src in sources:
        if src.kind == "hub":
            from huggingface_hub import hf_hub_download

            try:
                return Path(hf_hub_download(src.ref, src.filename, revision=src.revision, local_files_only=True,
                                            cache_dir=hub_cache_dir()))
            except Exception:  # noqa: BLE001 - not cached
                continue
    return None


def _check_cache_writable(*folders: Path) -> None:
    """Raise :class:`WeightsError` (naming the folder) when a download cache cannot be made or written."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as e:
            raise WeightsError(f"cannot write the weights cache {folder} ({e.strerror or e}); set HF_HOME to a "
                               "writable folder, or pass --weights-dir FOLDER holding the checkpoint") from e


def _check_size(path: Path, spec: dict[str, Any]) -> None:
    size = spec.get("size")
    if size and path.stat().st_size != size:
        raise WeightsError(f"{path.stat().st_size:,} bytes, expected {size:,}")


def locate(
    spec: dict[str, Any], weights_dir: Path | None = None, *, download: bool = True, force: bool = False
) -> Path | None:
    """Find (and if allowed, download) the raw checkpoint file of one spec.

    Order: ``weights_dir`` (not verified here), the caches (Hub cache, upvid's download cache),
    then each of the record's sources (:mod:`upvid.models.sources`) until one yields a file of the
    expected size and sha256. ``force`` skips the caches (used once when a cached copy fails
    its sha256).

    Returns:
        The path, or ``None`` if it is not available locally and ``download`` is False.

    Raises:
        WeightsError: every source failed (one line naming each source and why, and the manual
            route), or the file is not cached while offline.
    """
    weights_dir = weights_dir or (Path(os.environ["UPVID_WEIGHTS_DIR"]) if os.environ.get("UPVID_WEIGHTS_DIR") else None)
    if weights_dir is not None:
        found = _find_local(spec, Path(weights_dir))
        if found is not None:
            return found
    name = _file_name(spec)
    try:
        sources = sources_of(spec, name)
    except ValueError as e:
        raise WeightsError(f"{name}: {e}") from e
    if not force or _offline() or not download:
        cached = _cached(spec, name, sources)
        if cached is not None:
            return cached
    if not download:
        return None
    where = f" from {weights_dir}" if weights_dir is not None else ""
    manual = "; ".join(dict.fromkeys(s.browser_link for s in sources))
    if not sources:
        raise WeightsError(f"{name}: not found{where or ' in a weights folder'} and the record has no download "
                           f"source; {spec.get('source', '')}".rstrip("; "))
    if _offline():
        raise WeightsError(f"{name} is not cached and HF_HUB_OFFLINE is set; expected {_expected(spec)} "
                           f"from {sources[0].label}")
    dest = _download_dest(spec, name)
    part = dest.with_name(dest.name + ".part")
    _check_cache_writable(dest.parent, hub_cache_dir())
    failures: list[str] = []
    for src in sources:
        try:
            path = fetch_from(src, part, hub_cache=hub_cache_dir(), force=force)
            _check_size(path, spec)
            verify(path, spec, quiet=True)
        except SourceFailed as e:
            failures.append(f"{src.label}: {e}")
            continue
        except WeightsError as e:
            if src.kind != "hub":
                part.unlink(missing_ok=True)
            failures.append(f"{src.label}: {str(e).removeprefix(str(path) + ': ')}")
            continue
        if path == part:
            os.replace(part, dest)
            path = dest
        if hash_state(spec) == "prefix":  # an 8-hex prefix is cheap to forge: give the user the whole digest
            log.warning("%s matches the published sha256 prefix %s only; its full sha256 is %s (pin it as sha256 "
                        "in weights.toml, or compare it with a copy you trust)", name, spec["sha256_prefix"],
                        sha256_file(path))
        return path
    size = f", {spec['size']:,} bytes" if spec.get("size") else ""
    looked = (f"not in {weights_dir} (as {' or '.join([name, *spec.get('local_names', [])])}), and "
              if weights_dir is not None else "")
    raise WeightsError(f"cannot get {name} ({_expected(spec)}{size}): {looked}{'; '.join(failures)}. "
                       f"Download it by hand ({manual}) into a folder and pass --weights-dir FOLDER")


def _in_local_dir(path: Path, weights_dir: Path | None) -> bool:
    folder = weights_dir or os.environ.get("UPVID_WEIGHTS_DIR")
    return bool(folder) and Path(folder).resolve() in path.resolve().parents


def _read_raw(path: Path, spec: dict[str, Any]) -> dict[str, Tensor]:
    fmt = spec.get("format") or ("safetensors" if path.suffix == ".safetensors" else "pth")
    try:
        if fmt == "safetensors":
            sd: Any = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: holds a {type(sd).__name__}, not a state dict (a mapping of names to tensors)")
    key = spec.get("key")
    if key:
        if key not in sd:
            raise WeightsError(f"{path}: no {key!r} in checkpoint (keys: {', '.join(list(sd)[:5])})")
        sd = sd[key]
        if not isinstance(sd, dict):
            raise WeightsError(f"{path}: {key!r} holds a {type(sd).__name__}, not a state dict")
    elif isinstance(sd, dict) and not any(isinstance(v, Tensor) for v in sd.values()):
        for guess in ("params_ema", "params", "state_dict", "model"):
            if guess in sd:
                sd = sd[guess]
                break
        if not isinstance(sd, dict):
            raise WeightsError(f"{path}: its {guess!r} holds a {type(sd).__name__}, not a state dict")
    prefix = spec.get("strip_prefix")
    if prefix:
        sd = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if isinstance(v, Tensor)}


def converted_path(record: ModelRecord, digest: str) -> Path:
    """Path of the converted safetensors of ``record`` whose main checkpoint has this sha256."""
    return converted_dir() / f"{record.name}-{digest[:16]}.safetensors"


def embedded_path(record: ModelRecord) -> Path | None:
    """Path of the converted copy of ``record``'s weights shipped in ``upvid/data/`` (``None``:
    the model has none)."""
    if not record.embedded:
        return None
    return Path(__file__).resolve().parents[1] / "data" / record.embedded["file"]


def load_embedded(record: ModelRecord) -> dict[str, Tensor]:
    """The shipped copy of ``record``'s weights, verified by sha256, as an fp32 our-key state dict.

    Raises:
        WeightsError: the file is missing from the installation or fails its sha256.
    """
    path = embedded_path(record)
    if path is None:
        raise WeightsError(f"model {record.name!r} has no embedded weights")
    if not path.is_file():
        raise WeightsError(f"{path}: the embedded weights of {record.name} are missing from this installation")
    verify(path, {"sha256": record.embedded["sha256"]})
    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}


def _resolve(record: ModelRecord, weights_dir: Path | None, *, embedded: bool = True) -> tuple[dict[str, Tensor], Path]:
    specs = file_specs(record)
    if not specs:
        raise WeightsError(f"model {record.name!r} has no weights record")
    embedded = embedded and bool(record.embedded)
    main = locate(specs[0], weights_dir, download=not embedded)
    if main is None:  # not local, and the package ships a copy: no download needed
        return load_embedded(record), embedded_path(record)
    try:
        digest = verify(main, specs[0])
    except WeightsError:
        if _in_local_dir(main, weights_dir) or _offline():
            raise
        main = locate(specs[0], weights_dir, force=True)  # a corrupt cached download: fetch it again once
        digest = verify(main, specs[0])
    target = converted_path(record, digest)
    cached = _load_converted(target)
    if cached is not None:
        return cached, target
    sd = _read_raw(main, specs[0])
    for spec in specs[1:]:
        prefix = spec.get("prefix", "")
        if any(k.startswith(prefix) for k in sd):
            continue  # the main checkpoint already carries this part
        path = locate(spec, weights_dir)
        verify(path, spec)
        sd.update({prefix + k: v for k, v in _read_raw(path, spec).items()})
    if record.convert:
        sd = import_object(record.convert)(sd)
    sd = {k: v.contiguous() for k, v in sd.items()}
    _save_converted(sd, target, record, main)
    return sd, target


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _load_converted(target: Path) -> dict[str, Tensor] | None:
    """The cached converted state dict, if present and its sha256 matches the sidecar written
    with it; ``None`` (after a warning, the damaged copy removed) otherwise."""
    if not target.is_file():
        return None
    try:
        want = _sidecar(target).read_text().split()[0]
        if sha256_file(target) == want:
            return load_file(str(target))
        reason = "its sha256 does not match the one recorded when it was written"
    except (OSError, IndexError) as e:
        reason = f"no readable sha256 record ({type(e).__name__})"
    except Exception as e:  # a matching hash whose file still fails to load: treat as damaged
        reason = f"unreadable ({type(e).__name__})"
    log.warning("%s: converted weights are damaged (%s); converting again from the verified checkpoint",
                target, reason)
    for p in (target, _sidecar(target)):
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass
    return None


def _save_converted(sd: dict[str, Tensor], target: Path, record: ModelRecord, main: Path) -> None:
    """Cache the converted state dict as safetensors with a ``.sha256`` sidecar (atomically,
    the sidecar last). A cache folder that cannot be written is a warning: the job goes on with
    the weights in memory and converts again next time."""
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=".safetensors")
        os.close(fd)
        save_file(sd, tmp, metadata={"model": record.name, "source": str(main)})
        digest = sha256_file(Path(tmp))
        side = _sidecar(target)
        side_tmp = side.with_name(f".part-{os.getpid()}-{side.name}")
        side_tmp.write_text(f"{digest}  {target.name}\n")
        os.replace(tmp, target)
        os.replace(side_tmp, side)
    except OSError as e:
        log.warning("cannot cache converted weights in %s (%s); using them from memory "
                    "(set HF_HOME to a writable folder to keep them)", target.parent, e.strerror or e)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def resolve_state_dict(record: ModelRecord, weights_dir: Path | None = None) -> dict[str, Tensor]:
    """Our-key state dict of ``record``'s checkpoint: verified, converted, cached as safetensors.

    Raises:
        WeightsError: unavailable, failing sha256, unreadable.
    """
    return _resolve(record, weights_dir)[0]


def load_state_dict_into(net: nn.Module, record: ModelRecord, weights_dir: Path | None = None) -> None:
    """Load ``record``'s checkpoint into ``net`` strictly.

    Raises:
        WeightsError: unavailable / bad sha256 / missing or unexpected keys / shape mismatch.
    """
    sd = resolve_state_dict(record, weights_dir)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{record.name}: checkpoint does not match the network: {' '.join(str(e).split())[:400]}") from e


def weights_state(record: ModelRecord, weights_dir: Path | None = None) -> str:
    """What ``upvid models`` shows: ``"none needed"``, ``"cached"`` (the published checkpoint is
    local), ``"embedded (fp16)"`` (it is not, and the package ships a copy) or ``"not cached"``."""
    if not record.weights:
        return "none needed"
    specs = file_specs(record)
    try:
        if locate(specs[0], weights_dir, download=False) is not None:
            return "cached"
    except WeightsError:
        pass
    if record.embedded:
        return f"embedded ({record.embedded.get('dtype', 'fp32')})"
    return "not cached"


def fetch(record: ModelRecord, weights_dir: Path | None = None) -> Path:
    """Download (if needed), verify and convert ``record``'s checkpoint; return the safetensors path.

    This always gets the published checkpoint, even for a model with an embedded copy (which
    it then takes precedence over). A checkpoint found in ``weights_dir`` is also copied into upvid's download cache (after its
    sha256 is verified), so later runs without ``--weights-dir`` find it there.

    Raises:
        WeightsError: as :func:`resolve_state_dict`.
    """
    target = _resolve(record, weights_dir, embedded=False)[1]
    specs = file_specs(record)
    main = locate(specs[0], weights_dir, download=False)
    if main is not None and _in_local_dir(main, weights_dir):
        dest = _download_dest(specs[0], _file_name(specs[0]))
        if not dest.is_file():
            import shutil

            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            shutil.copyfile(main, part)
            verify(part, specs[0], quiet=True)
            os.replace(part, dest)
    return target


def hash_state(spec: dict[str, Any]) -> str:
    """How a file is verified: ``"pinned"`` (full sha256), ``"prefix"`` (the 8-hex prefix a
    file name embeds) or ``"unknown"`` (no published hash: loaded with a warning)."""
    if spec.get("sha256"):
        return "pinned"
    return "prefix" if spec.get("sha256_prefix") else "unknown"


def source_labels(record: ModelRecord) -> list[str]:
    """The main checkpoint's download sources, in the order they are tried (empty: none)."""
    specs = file_specs(record)
    return [s.label for s in sources_of(specs[0], _file_name(specs[0]))] if specs else []


def verify_cached(record: ModelRecord, weights_dir: Path | None = None) -> str:
    """Re-hash ``record``'s cached checkpoint; a file that fails is deleted and fetched again.

    Returns:
        ``"ok"``, ``"re-fetched"`` (it failed and a verified copy replaced it), ``"not cached"``
        or ``"none needed"``.

    Raises:
        WeightsError: the re-fetch failed, or a file in ``weights_dir`` fails (never deleted).
    """
    specs = file_specs(record)
    if not specs:
        return "none needed"
    path = locate(specs[0], weights_dir, download=False)
    if path is None:
        return "not cached"
    try:
        verify(path, specs[0], quiet=True)
        return "ok"
    except WeightsError:
        if _in_local_dir(path, weights_dir):
            raise
    log.warning("%s: the cached %s fails its sha256; downloading it again", record.name, path.name)
    real = path.resolve()
    path.unlink(missing_ok=True)
    if real != path:
        real.unlink(missing_ok=True)  # the Hub cache's blob behind the snapshot link
    fetch(record, weights_dir)  # converted safetensors are keyed by the verified digest: still valid
    return "re-fetched"

