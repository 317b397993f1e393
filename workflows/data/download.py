"""`mmrec data download`: a GroupLens MovieLens archive -> verified, typed Parquet + manifest.

Steps: fetch the archive into `<data-dir>/_downloads/` (resumable, kept for reruns), verify it
against `--checksum` or the published `.md5`, extract only the needed members into a staging
folder, convert them, then move the four tables into `<data-dir>/<variant>/` and write the
manifest last. Until the manifest is written the outputs are not trusted, and any failure before
the move leaves the dataset folder untouched, so a failed or interrupted run never leaves a
ratings file behind that a later stage (or a rerun) could mistake for a finished one.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmrec.config import DownloadConfig
from mmrec.errors import MmrecError
from mmrec.http import download_file, fetch_text
from mmrec.io import file_digest, read_json, temp_dir_beside, write_json_atomic
from mmrec.paths import DatasetPaths
from workflows.data import convert
from workflows.data.extract import extract_members
from workflows.data.schema import SCHEMAS, schema_description
from workflows.data.variants import CSV, DAT, ML100K, Variant, get_variant

CONVERTERS = {CSV: convert.convert_csv, DAT: convert.convert_dat, ML100K: convert.convert_100k}
_HEX_LENGTH = {"md5": 32, "sha256": 64}
_MD5_TOKEN = re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{32})(?![0-9A-Fa-f])")


def download_dataset(cfg: DownloadConfig) -> dict[str, Any]:
    """Download, verify and convert one MovieLens variant; return its manifest.

    The returned dict is the manifest plus "skipped": True when a finished dataset of this
    variant was already there (and `cfg.force` is False), so nothing was done.
    """
    variant = get_variant(cfg.variant)
    paths = DatasetPaths.of(cfg.data_dir, variant.name)
    if not cfg.force:
        done = _finished_manifest(paths, variant)
        if done is not None:
            return {**done, "skipped": True}

    url = variant.archive_url(cfg.base_url)
    algorithm, expected, checksum_from = _expected_checksum(cfg, variant)
    archive = paths.downloads / variant.archive_name

    t0 = time.perf_counter()
    reused = archive.exists() and file_digest(archive, algorithm) == expected
    if not reused:
        archive.unlink(missing_ok=True)
        download_file(
            url,
            archive,
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
            backoff_s=cfg.backoff_s,
            desc=variant.archive_name,
        )
        actual = file_digest(archive, algorithm)
        if actual != expected:
            archive.unlink()
            raise MmrecError(
                f"{url}: {algorithm} checksum mismatch: expected {expected}, got {actual} "
                f"(checksum from {checksum_from}); the download was deleted"
            )
    download_s = time.perf_counter() - t0

    staging = temp_dir_beside(paths.data_dir / variant.name)
    try:
        t1 = time.perf_counter()
        try:
            members = extract_members(
                archive,
                variant.files,
                staging / "extracted",
                max_member_bytes=cfg.max_member_bytes,
                max_total_bytes=cfg.max_total_bytes,
                optional=variant.optional,
            )
        except MmrecError:
            archive.unlink(missing_ok=True)  # unusable: let a rerun fetch it afresh
            raise
        t2 = time.perf_counter()
        outputs = {name: staging / getattr(paths, name).name for name in convert.TABLES}
        counts = CONVERTERS[variant.format](members, outputs, chunk_rows=cfg.chunk_rows)
        t3 = time.perf_counter()
        manifest = _manifest(
            variant,
            paths,
            url=url,
            checksum=(algorithm, expected, checksum_from),
            archive=archive,
            counts=counts,
            timings={
                "download_s": round(download_s, 3),
                "extract_s": round(t2 - t1, 3),
                "convert_s": round(t3 - t2, 3),
            },
            reused=reused,
            absent=[name for name in variant.optional if name not in members],
        )
        _publish(paths, outputs, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**manifest, "skipped": False}


def parse_checksum(spec: str) -> tuple[str, str]:
    """ "md5:HEX" or "sha256:HEX" -> (algorithm, lowercase hex)."""
    algorithm, sep, digest = spec.strip().partition(":")
    algorithm, digest = algorithm.lower(), digest.strip().lower()
    if not sep or algorithm not in _HEX_LENGTH:
        raise MmrecError(f"--checksum {spec!r}: expected md5:HEX or sha256:HEX")
    if len(digest) != _HEX_LENGTH[algorithm] or not re.fullmatch(r"[0-9a-f]+", digest):
        raise MmrecError(
            f"--checksum {spec!r}: a {algorithm} digest is {_HEX_LENGTH[algorithm]} hex digits"
        )
    return algorithm, digest


def parse_md5_file(text: str, archive_name: str) -> str:
    """The md5 in a published checksum file: "HEX  name", "HEX", or "MD5 (name) = HEX"."""
    lines = [line for line in text.splitlines() if _MD5_TOKEN.search(line)]
    for line in lines:  # prefer the line naming our archive, if the file lists several
        if archive_name in line:
            return _MD5_TOKEN.search(line).group(1).lower()  # type: ignore[union-attr]
    if len(lines) == 1:
        return _MD5_TOKEN.search(lines[0]).group(1).lower()  # type: ignore[union-attr]
    raise MmrecError(
        f"checksum file for {archive_name}: no md5 digest for it found in {text[:200]!r}"
    )


def _expected_checksum(cfg: DownloadConfig, variant: Variant) -> tuple[str, str, str]:
    if cfg.checksum:
        return (*parse_checksum(cfg.checksum), "--checksum")
    md5_url = variant.checksum_url(cfg.base_url)
    try:
        text = fetch_text(
            md5_url, timeout_s=cfg.timeout_s, retries=cfg.retries, backoff_s=cfg.backoff_s
        )
    except MmrecError as exc:
        raise MmrecError(f"cannot get the published checksum ({exc}); pass --checksum") from exc
    return "md5", parse_md5_file(text, variant.archive_name), md5_url


def _finished_manifest(paths: DatasetPaths, variant: Variant) -> dict[str, Any] | None:
    """The manifest of a complete earlier run of this variant, else None."""
    if not paths.manifest.exists():
        return None
    try:
        manifest = read_json(paths.manifest)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("variant") != variant.name:
        return None
    if not all(getattr(paths, name).exists() for name in convert.TABLES):
        return None
    return manifest


def _manifest(
    variant: Variant,
    paths: DatasetPaths,
    *,
    url: str,
    checksum: tuple[str, str, str],
    archive: Path,
    counts: dict[str, int],
    timings: dict[str, float],
    reused: bool,
    absent: list[str],
) -> dict[str, Any]:
    from mmrec import __version__

    algorithm, digest, source = checksum
    manifest: dict[str, Any] = {
        "dataset": variant.name,
        "variant": variant.name,
        "format": variant.format,
        "path": str(paths.root),
        "source": {"url": url, "archive": str(archive), "archive_reused": reused},
        "checksum": {"algorithm": algorithm, "hex": digest, "verified": True, "from": source},
        "archive_bytes": archive.stat().st_size,
        "row_counts": {name: int(counts[name]) for name in convert.TABLES},
        "files": {name: getattr(paths, name).name for name in convert.TABLES},
        "schema": {name: schema_description(SCHEMAS[name]) for name in convert.TABLES},
        "timings": timings,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mmrec_version": __version__,
    }
    present = (("links", variant.has_links), ("tags", variant.has_tags))
    missing = [name for name, has in present if not has or name in absent]
    if missing:
        manifest["notes"] = (
            f"this {variant.name} archive has no {' or '.join(missing)}: "
            "written as empty tables with the schema"
        )
    return manifest


def _publish(paths: DatasetPaths, outputs: dict[str, Path], manifest: dict[str, Any]) -> None:
    """Move the staged tables into the dataset folder; the manifest goes last."""
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.manifest.unlink(missing_ok=True)  # old outputs stop counting as finished first
    for name, staged in outputs.items():
        os.replace(staged, getattr(paths, name))
    write_json_atomic(paths.manifest, manifest)
