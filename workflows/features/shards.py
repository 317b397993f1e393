"""Sharded, resumable writing: each shard is an atomic Parquet file tagged with a fingerprint.

A long extraction is cut into shards of a fixed plan; a rerun after an interruption reuses every
shard whose fingerprint (run settings + the exact items in it) still matches and computes the rest,
so the merged output is the same as that of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.io import write_table_atomic

SHARD_KEY = b"mmrec_shard"


def shard_path(directory: Path, index: int) -> Path:
    return directory / f"part-{index:05d}.parquet"


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (run settings, item identities)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def file_stamp(path: Path) -> list:
    """name, size and mtime of an input file, from one stat: cheap identity for a fingerprint."""
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def write_shard(path: Path, table: pa.Table, fp: str) -> None:
    """Write one finished shard atomically, its fingerprint in the Parquet metadata."""
    meta = dict(table.schema.metadata or {})
    meta[SHARD_KEY] = fp.encode()
    write_table_atomic(path, table.replace_schema_metadata(meta))


def read_shard(path: Path, fp: str) -> pa.Table | None:
    """The shard at `path` if it is complete and was made for fingerprint `fp`, else None."""
    if not path.exists():
        return None
    try:
        meta = pq.read_schema(path).metadata or {}
        if meta.get(SHARD_KEY) != fp.encode():
            return None
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):  # unreadable leftovers are recomputed, not trusted
        return None
    meta = dict(table.schema.metadata or {})
    meta.pop(SHARD_KEY, None)
    return table.replace_schema_metadata(meta or None)


def run_shards(
    directory: Path,
    chunks: Sequence[Sequence[Any]],
    identities: Sequence[Any],
    run_key: str,
    compute: Callable[[Sequence[Any]], pa.Table],
    on_reused: Callable[[int], None] | None = None,
) -> tuple[list[pa.Table], int]:
    """Compute (or reuse) one table per chunk; the tables in plan order and how many were reused.

    `identities[i]` describes chunk i's inputs (ids, file sizes, texts' hashes); together with
    `run_key` it decides whether a shard on disk can be trusted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tables: list[pa.Table] = []
    reused = 0
    for i, (chunk, ident) in enumerate(zip(chunks, identities, strict=True)):
        path = shard_path(directory, i)
        fp = fingerprint(run_key, i, ident)
        table = read_shard(path, fp)
        if table is None:
            table = compute(chunk)
            write_shard(path, table, fp)
        else:
            reused += 1
            if on_reused is not None:
                on_reused(len(chunk))
        tables.append(table)
    # shards beyond the plan belong to an older plan (e.g. another shard size): drop them
    for stale in directory.glob("part-*.parquet"):
        try:
            index = int(stale.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        if index >= len(chunks):
            stale.unlink(missing_ok=True)
    return tables, reused


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    if size < 1:
        raise ValueError(f"shard size must be >= 1, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]
