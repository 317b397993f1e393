"""Pretrained weights: downloaded into the libraries' own caches when online, never when offline.

torchvision checkpoints go to `$TORCH_HOME/hub/checkpoints/` through torch.hub (the file name
carries a sha256 prefix that the download is checked against before it is moved into place), and
Hugging Face repositories go to the hub cache (`$HF_HOME/hub`) through `snapshot_download`, whose
files are then checked against the hashes the hub named them by. A download that fails, or whose
bytes do not match, leaves nothing in the cache; offline, nothing is requested at all.

Offline is `MMREC_OFFLINE=1` (what `mmrec --offline` sets) or `HF_HUB_OFFLINE=1`.
`MMREC_TORCH_MIRROR` replaces torchvision's download host with another base URL (a mirror, or a
test server), `HF_ENDPOINT` does the same for the hub.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from mmrec.errors import MmrecError

OFFLINE_ENVS = ("MMREC_OFFLINE", "HF_HUB_OFFLINE")
TORCH_MIRROR_ENV = "MMREC_TORCH_MIRROR"
_TRUE = {"1", "true", "yes", "on"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def offline() -> bool:
    """Whether this process must not download anything (read at call time, not import time)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in OFFLINE_ENVS)


def offline_reason() -> str:
    """Which setting made this process offline, e.g. 'MMREC_OFFLINE=1' (for error messages)."""
    names = [n for n in OFFLINE_ENVS if os.environ.get(n, "").strip().lower() in _TRUE]
    return ", ".join(f"{n}={os.environ[n]}" for n in names) or "online"


# -- torchvision checkpoints ------------------------------------------------------------------


def torch_checkpoint_dir() -> Path:
    """torchvision's cache folder, from $TORCH_HOME at call time."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def mirrored(url: str) -> str:
    """`url` with its folder replaced by $MMREC_TORCH_MIRROR when that is set."""
    base = os.environ.get(TORCH_MIRROR_ENV, "").strip()
    if not base:
        return url
    return base.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def download_checkpoint(url: str, dest: Path) -> Path:
    """Fetch `url` to `dest` unless it is there; the sha256 prefix in its name must match.

    torch.hub writes to a temporary file beside `dest`, removes it on any error and moves it into
    place only once the hash matched, so a truncated or corrupted download never becomes `dest`.
    """
    import torch

    if dest.is_file():
        return dest
    match = torch.hub.HASH_REGEX.search(dest.name)
    if match is None:
        raise MmrecError(
            f"{dest.name}: the file name carries no sha256 prefix (name-<hex>.ext), so a download "
            "could not be verified; download it yourself and pass --image-weights FILE"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = os.environ.get("MMREC_NO_PROGRESS") != "1"
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=match.group(1), progress=show)
    except Exception as exc:  # urllib, socket and hash errors alike: one clear reason
        _remove_partials(dest)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MmrecError(f"downloading {url} failed: {type(exc).__name__}: {reason}") from exc
    return dest


def _remove_partials(dest: Path) -> None:
    for partial in dest.parent.glob(f"{dest.name}.*.partial"):
        partial.unlink(missing_ok=True)


# -- Hugging Face repositories ----------------------------------------------------------------


def hf_cache_dir() -> Path:
    """The hub cache, from HF_HUB_CACHE / HF_HOME at call time (the library reads them once)."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_snapshot(repo_id: str) -> Path:
    """A local snapshot of `repo_id`: from the cache offline, downloaded (and verified) online."""
    from huggingface_hub import snapshot_download

    cache = hf_cache_dir()
    if offline():
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        folder = Path(snapshot_download(repo_id, cache_dir=cache, endpoint=endpoint))
    except Exception:
        _remove_incomplete(cache, repo_id)
        raise
    verify_snapshot(folder)
    return folder


def _repo_cache(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _remove_incomplete(cache: Path, repo_id: str) -> None:
    """A failed transfer leaves `blobs/*.incomplete` for resuming; we promise an empty cache."""
    for part in (_repo_cache(cache, repo_id) / "blobs").glob("*.incomplete"):
        part.unlink(missing_ok=True)


def verify_snapshot(folder: Path) -> None:
    """Each file's bytes against the hash the hub stored it under (sha256 for LFS files, the git
    blob sha1 for small ones); a mismatch removes the file from the cache and is an error."""
    for link in sorted(p for p in folder.rglob("*") if p.is_symlink() or p.is_file()):
        blob = link.resolve()
        expected = blob.name
        if _SHA256.match(expected):
            actual = _digest(blob, hashlib.sha256())
        elif _GIT_SHA1.match(expected):
            h = hashlib.sha1(usedforsecurity=False)
            h.update(f"blob {blob.stat().st_size}\0".encode())
            actual = _digest(blob, h)
        else:
            continue  # a cache without hash-named blobs (copied by hand): nothing to check against
        if actual != expected:
            blob.unlink(missing_ok=True)
            link.unlink(missing_ok=True)
            raise MmrecError(
                f"{link.name} downloaded into {folder} does not match its hash "
                f"(expected {expected}, got {actual}); it was removed from the cache"
            )


def _digest(path: Path, h) -> str:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
