"""Where a checkpoint file comes from: a record's download sources, tried in order.

A ``[models.NAME.weights]`` table (see :mod:`upvid.models.weights`) may list several sources::

    sources = [
      { drive = "14Pn3uCJ5IvkLJD7HPPqXbV1Si43FV2k2" },                 # a Google Drive file id
      { drive_folder = "1MIUK37Izc4IcA_a3eSH-21EXOZO5G5qU" },          # a Drive folder + the record's filename
      { url = "https://media.githubusercontent.com/media/..." },       # a plain HTTPS URL (Git LFS media, release)
      { repo_id = "owner/repo", filename = "net.pth" },                # a Hugging Face Hub file
    ]
    size = 150729093                                                    # bytes, checked before the sha256

A record's own ``repo_id`` or ``url`` is its first source. Each source is tried until one
yields a file that verifies (size, then sha256 or its published prefix); a file that does not
is deleted and the next source is tried. Google Drive goes through gdown (its confirm pages,
cookies and quota answers), plain URLs through huggingface_hub's ``http_get`` (progress bar,
resume of a partial ``.part`` file), Hub files through ``hf_hub_download``.

Proxies: gdown (requests) and huggingface_hub honour the usual ``HTTPS_PROXY``/``NO_PROXY``
variables; the tests use that to put a local stand-in in front of Drive's hosts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("upvid")

class SourceFailed(Exception):
    """One source did not yield the file; the message is the reason, in a few words."""


@dataclass(frozen=True)
class Source:
    """One download source of a checkpoint file.

    Attributes:
        kind: ``"drive"``, ``"drive_folder"``, ``"url"`` or ``"hub"``.
        ref: the Drive file/folder id, the URL, or the Hub ``repo_id``.
        filename: the file's name (in a Drive folder or Hub repo).
        revision: Hub revision, if any.
    """

    kind: str
    ref: str
    filename: str
    revision: str | None = None

    @property
    def label(self) -> str:
        """How the source is named in messages (``Google Drive 14Pn...``, the URL, ``Hub owner/repo``)."""
        return {"drive": f"Google Drive file {self.ref}", "drive_folder": f"Google Drive folder {self.ref}",
                "url": self.ref, "hub": f"Hugging Face Hub {self.ref}"}[self.kind]

    @property
    def browser_link(self) -> str:
        """A link a person can open to download the file by hand."""
        if self.kind == "drive":
            return f"https://drive.google.com/file/d/{self.ref}/view"
        if self.kind == "drive_folder":
            return f"https://drive.google.com/drive/folders/{self.ref}"
        if self.kind == "hub":
            return f"https://huggingface.co/{self.ref}/blob/{self.revision or 'main'}/{self.filename}"
        return self.ref


def sources_of(spec: dict[str, Any], filename: str) -> list[Source]:
    """The sources of one weights spec, in the order they are tried.

    Raises:
        ValueError: a ``sources`` entry of no known kind.
    """
    out: list[Source] = []
    if spec.get("repo_id"):
        out.append(Source("hub", spec["repo_id"], spec.get("filename") or filename, spec.get("revision")))
    if spec.get("url"):
        out.append(Source("url", spec["url"], filename))
    for entry in spec.get("sources", []):
        if entry.get("drive"):
            out.append(Source("drive", entry["drive"], filename))
        elif entry.get("drive_folder"):
            out.append(Source("drive_folder", entry["drive_folder"], entry.get("filename") or filename))
        elif entry.get("url"):
            out.append(Source("url", entry["url"], filename))
        elif entry.get("repo_id"):
            out.append(Source("hub", entry["repo_id"], entry.get("filename") or filename, entry.get("revision")))
        else:
            raise ValueError(f"weights source {entry!r}: give drive, drive_folder, url or repo_id")
    return out


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:200]


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]


def download_url(url: str, part: Path) -> None:
    """Download ``url`` into ``part``, continuing a partial file (progress bar on stderr).

    Raises:
        SourceFailed: HTTP error, connection refused, ...
    """
    from huggingface_hub.file_download import http_get

    part.parent.mkdir(parents=True, exist_ok=True)
    resume = part.stat().st_size if part.is_file() else 0
    try:
        with open(part, "ab") as f:
            http_get(url, f, resume_size=resume, displayed_filename=part.name.removesuffix(".part"))
    except Exception as e:  # noqa: BLE001 - any transport or HTTP error is this source's failure
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status == 416 and resume:  # the partial file is already whole (or longer): verify it
            return
        raise SourceFailed(f"HTTP {status}" if status else _first_line(e)) from e


def download_drive(file_id: str, part: Path) -> None:
    """Download a Google Drive file through gdown into ``part`` (resumed if partial).

    Raises:
        SourceFailed: Drive answered with an error or quota page, or the transfer failed.
    """
    import gdown

    part.parent.mkdir(parents=True, exist_ok=True)
    bar = None

    def progress(done: int, total: int | None) -> None:  # bytes, speed and ETA on stderr, like Hub downloads
        nonlocal bar
        if bar is None:
            from huggingface_hub.utils import tqdm

            bar = tqdm(total=total, initial=0, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"))
        bar.update(done - bar.n)

    try:
        gdown.download(id=file_id, output=str(part), quiet=True, resume=part.is_file(), progress=progress)
    except Exception as e:  # noqa: BLE001 - gdown raises its own and requests' errors
        reason = _first_line(e)
        if "Too many users" in reason or "quota" in reason.lower():
            reason = "Drive quota exceeded (too many downloads recently)"
        elif "Cannot retrieve the public link" in reason or "permission" in reason.lower():
            reason = "Drive gave no download link (file missing, private, or the page changed)"
        raise SourceFailed(reason) from e
    finally:
        if bar is not None:
            bar.close()


def drive_folder_file_id(folder_id: str, filename: str) -> str:
    """The id of file ``filename`` in a public Google Drive folder (gdown's folder listing).

    Raises:
        SourceFailed: the folder cannot be listed or holds no such file.
    """
    import gdown

    try:
        files = gdown.download_folder(id=folder_id, skip_download=True, quiet=True)
    except Exception as e:  # noqa: BLE001
        raise SourceFailed(f"cannot list the folder ({_first_line(e)})") from e
    for f in files or []:
        if Path(f.path).name == filename:
            return f.id
    raise SourceFailed(f"the folder holds no {filename}")


def fetch_from(source: Source, part: Path, *, hub_cache: Path, force: bool = False) -> Path:
    """Download one source. Hub files land in the Hub cache; the rest in ``part``.

    Args:
        source: where from.
        part: the partial-download file for non-Hub sources (resumed if present).
        hub_cache: the Hugging Face cache folder.
        force: Hub: download again even if cached.

    Returns:
        The downloaded file (``part``, or the Hub cache's path).

    Raises:
        SourceFailed: this source did not yield a file.
    """
    if source.kind == "hub":
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(source.ref, source.filename, revision=source.revision, cache_dir=hub_cache,
                                        endpoint=os.environ.get("HF_ENDPOINT"), force_download=force))
        except Exception as e:  # noqa: BLE001
            raise SourceFailed(_first_line(e).split(" (Request ID")[0]) from e
    if source.kind == "url":
        download_url(source.ref, part)
    elif source.kind == "drive":
        download_drive(source.ref, part)
    else:
        download_drive(drive_folder_file_id(source.ref, source.filename), part)
    if part.is_file() and _looks_like_html(part):
        part.unlink()
        raise SourceFailed("got an HTML page instead of the file (a Drive confirm or quota page)")
    if not part.is_file():
        raise SourceFailed("no file was written")
    return part
