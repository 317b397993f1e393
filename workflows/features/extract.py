"""`mmrec features`: poster and synopsis embeddings per movie, written in resumable shards.

Entry point: `extract_features(cfg)`. Each modality is one pass over a fixed, sorted plan of movies
cut into shards; finished shards survive an interruption and are reused, then merged into
`features/<modality>.parquet`, and the feature store is rebuilt from those files.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.config import DEVICES, FeaturesConfig, device_name
from mmrec.errors import MmrecError
from mmrec.io import write_table_atomic
from mmrec.paths import DatasetPaths
from mmrec.progress import progress
from workflows.features.fallback import movie_texts, read_movies
from workflows.features.shards import chunked, file_stamp, fingerprint, run_shards
from workflows.features.store import META_KEY, MODALITIES, build_feature_store, vectors_to_array

FORMAT_VERSION = 1  # bump when the bytes an unchanged input produces would change


def extract_features(cfg: FeaturesConfig) -> dict:
    """Embed each requested modality (skipping up-to-date outputs), then build the feature store."""
    import torch

    bad = [m for m in cfg.modalities if m not in MODALITIES]
    if bad or not cfg.modalities:
        raise MmrecError(f"unknown modalities {bad}; choose from {', '.join(MODALITIES)}")
    if bad := [m for m in cfg.random_init if m not in MODALITIES]:
        raise MmrecError(f"--random-init names unknown modalities {bad}")
    if cfg.batch_size < 1 or cfg.shard_size < 1 or cfg.num_workers < 0:
        raise MmrecError("batch size and shard size must be >= 1, num workers >= 0")
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    device = torch_device(cfg.device, torch)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    summary: dict[str, Any] = {"dataset": cfg.dataset, "root": str(paths.root)}
    summary["device"] = str(device)
    for modality in cfg.modalities:
        run = _extract_image if modality == "image" else _extract_text
        summary[modality] = run(cfg, paths, device)
    summary["store"] = build_feature_store(cfg)
    return summary


def torch_device(name: str, torch: Any) -> Any:
    """The project's device vocabulary (cpu | gpu | auto; `cuda` still accepted) to torch's."""
    name = device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "gpu" and not torch.cuda.is_available():
        raise MmrecError("--device gpu was asked for but torch sees no CUDA GPU")
    if name not in DEVICES:
        raise MmrecError(f"unknown device {name!r}; use {', '.join(DEVICES)}")
    return torch.device("cuda" if name == "gpu" else "cpu")


def _up_to_date(out: Path, input_fp: str, force: bool) -> dict | None:
    """The metadata of `out` if it was made from exactly these inputs and settings."""
    if force or not out.exists():
        return None
    try:
        meta = json.loads((pq.read_schema(out).metadata or {}).get(META_KEY.encode(), b"{}"))
    except (OSError, pa.ArrowException, ValueError):
        return None
    return meta if meta.get("input_fingerprint") == input_fp else None


def _prepare_shards(paths: DatasetPaths, modality: str, force: bool) -> Path:
    shard_dir = paths.features / "_shards" / modality
    if force:
        shutil.rmtree(shard_dir, ignore_errors=True)
    return shard_dir


def _write_output(out: Path, ids: list[int], vectors: np.ndarray, meta: dict) -> None:
    table = pa.table({"movieId": pa.array(ids, pa.int32()), "embedding": vectors_to_array(vectors)})
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})
    write_table_atomic(out, table)


def _skipped(meta: dict, out: Path) -> dict:
    return {
        "skipped": True,
        "path": str(out),
        "model": meta.get("model"),
        "dim": meta.get("dim"),
        "rows": meta.get("rows"),
    }


def _extract_image(cfg: FeaturesConfig, paths: DatasetPaths, device: Any) -> dict:
    from workflows.features import image

    out = paths.modality_embeddings("image")
    movie_ids = set(read_movies(paths).column("movieId").to_pylist())
    posters, ignored = image.find_posters(paths.posters, movie_ids)
    items = sorted(posters.items())
    random_image = "image" in cfg.random_init
    t0 = time.perf_counter()
    model = None
    identity = image.weights_identity(cfg.image_model, cfg.image_weights, random_image, cfg.seed)
    if identity[-1] is None:  # weights not on disk yet: fetch them (or fail) before fingerprinting
        model = image.build_image_model(cfg.image_model, cfg.image_weights, random_image, cfg.seed)
        identity = image.weights_identity(
            cfg.image_model, cfg.image_weights, random_image, cfg.seed
        )
    run_key = fingerprint(
        "image",
        FORMAT_VERSION,
        cfg.image_model,
        cfg.seed,
        image.preprocessing_of(cfg.image_model),
        identity,
    )
    chunks = chunked(items, cfg.shard_size)
    identities = [[[mid, *file_stamp(p)] for mid, p in c] for c in chunks]
    input_fp = fingerprint(run_key, identities)
    if (meta := _up_to_date(out, input_fp, cfg.force)) is not None:
        return _skipped(meta, out)
    shard_dir = _prepare_shards(paths, "image", cfg.force)

    if model is None:
        t0 = time.perf_counter()
        model = image.build_image_model(cfg.image_model, cfg.image_weights, random_image, cfg.seed)
    t_load = time.perf_counter() - t0
    computed = 0

    def compute(chunk: list) -> pa.Table:
        nonlocal computed
        ids, vecs, failed = image.embed_posters(
            model, chunk, cfg.batch_size, cfg.num_workers, device, on_batch=bar.update
        )
        computed += len(chunk)
        rows = {mid: v for mid, v in zip(ids, vecs.numpy(), strict=False)}
        reasons = dict(failed)
        order = [mid for mid, _ in chunk]
        zeros = np.zeros(model.dim, np.float32)
        return pa.table(
            {
                "movieId": pa.array(order, pa.int32()),
                "embedding": vectors_to_array(
                    np.stack([rows.get(m, zeros) for m in order])
                    if order
                    else np.zeros((0, model.dim), np.float32)
                ),
                "ok": pa.array([int(m in rows) for m in order], pa.int8()),
                "reason": pa.array([reasons.get(m) for m in order], pa.string()),
            }
        )

    t1 = time.perf_counter()
    with progress(total=len(items), desc="image", unit="poster") as bar:
        tables, reused = run_shards(shard_dir, chunks, identities, run_key, compute, bar.update)
    t_embed = time.perf_counter() - t1
    merged = _concat(tables, model.dim)
    ok = np.asarray(merged.column("ok").to_numpy(zero_copy_only=False), bool)
    ids = [m for m, good in zip(merged.column("movieId").to_pylist(), ok, strict=False) if good]
    failed = [
        {"movieId": m, "reason": r}
        for m, r, good in zip(
            merged.column("movieId").to_pylist(),
            merged.column("reason").to_pylist(),
            ok,
            strict=False,
        )
        if not good
    ]
    vectors = _vectors(merged)[ok]
    meta = {
        "modality": "image",
        "model": cfg.image_model,
        "dim": model.dim,
        "weights": model.weights,
        "weights_file": model.weights_file,
        "seed": cfg.seed,
        "preprocessing": model.preprocessing,
        "rows": len(ids),
        "movies": len(movie_ids),
        "posters_found": len(items),
        "posters_missing": len(movie_ids) - len(items),
        "posters_failed": failed,
        "files_ignored": ignored,
        **_run_meta(cfg, device, len(chunks), reused, t_load, t_embed, computed, input_fp),
    }
    return _finish(out, ids, vectors, meta, shard_dir, computed)


def _extract_text(cfg: FeaturesConfig, paths: DatasetPaths, device: Any) -> dict:
    from workflows.features import text

    out = paths.modality_embeddings("text")
    items, stats = movie_texts(paths, cfg.max_tags)
    run_key = fingerprint(
        "text",
        FORMAT_VERSION,
        cfg.text_model,
        cfg.max_text_tokens,
        cfg.seed,
        text.weights_identity(cfg.text_model, "text" in cfg.random_init, cfg.seed),
    )
    chunks = chunked(items, cfg.shard_size)
    identities = [[[i.movie_id, fingerprint(i.text)] for i in c] for c in chunks]
    input_fp = fingerprint(run_key, identities)
    if (meta := _up_to_date(out, input_fp, cfg.force)) is not None:
        return _skipped(meta, out)
    shard_dir = _prepare_shards(paths, "text", cfg.force)

    t0 = time.perf_counter()
    model = text.build_text_model(
        cfg.text_model, "text" in cfg.random_init, cfg.seed, cfg.max_text_tokens
    )
    t_load = time.perf_counter() - t0
    computed = 0

    def compute(chunk: list) -> pa.Table:
        nonlocal computed
        vecs, cut = text.embed_texts(
            model, [i.text for i in chunk], cfg.batch_size, device, on_batch=bar.update
        )
        computed += len(chunk)
        return pa.table(
            {
                "movieId": pa.array([i.movie_id for i in chunk], pa.int32()),
                "embedding": vectors_to_array(vecs.numpy()),
                "fallback": pa.array([int(i.fallback) for i in chunk], pa.int8()),
                "truncated": pa.array([int(c) for c in cut], pa.int8()),
            }
        )

    t1 = time.perf_counter()
    with progress(total=len(items), desc="text", unit="text") as bar:
        tables, reused = run_shards(shard_dir, chunks, identities, run_key, compute, bar.update)
    t_embed = time.perf_counter() - t1
    merged = _concat(tables, model.dim)
    ids = merged.column("movieId").to_pylist()
    fallback = [m for m, f in zip(ids, merged.column("fallback").to_pylist(), strict=False) if f]
    truncated = [m for m, f in zip(ids, merged.column("truncated").to_pylist(), strict=False) if f]
    meta = {
        "modality": "text",
        "model": cfg.text_model,
        "model_source": model.source,
        "dim": model.dim,
        "weights": model.weights,
        "weight_files": model.weight_files,
        "seed": cfg.seed,
        "pooling": model.pooling + (" + l2 normalize" if model.normalize else ""),
        "max_tokens": model.max_tokens,
        "rows": len(ids),
        "movies": stats["movies"],
        "synopses": stats["synopses"],
        "fallback_count": len(fallback),
        "fallback_movies": fallback,
        "truncated_count": len(truncated),
        "truncated_movies": truncated,
        "synopses_for_unknown_movies": stats["synopses_for_unknown_movies"],
        **_run_meta(cfg, device, len(chunks), reused, t_load, t_embed, computed, input_fp),
    }
    return _finish(out, ids, _vectors(merged), meta, shard_dir, computed)


def _run_meta(
    cfg: FeaturesConfig,
    device: Any,
    shards: int,
    reused: int,
    t_load: float,
    t_embed: float,
    computed: int,
    input_fp: str,
) -> dict:
    """The bookkeeping every modality's metadata carries: device, shards, timings, fingerprint."""
    return {
        "device": str(device),
        "batch_size": cfg.batch_size,
        "shards": shards,
        "shards_reused": reused,
        "timings": {"load_model_s": round(t_load, 3), "embed_s": round(t_embed, 3)},
        "items_per_s": round(computed / t_embed, 2) if computed and t_embed > 0 else None,
        "input_fingerprint": input_fp,
        "format_version": FORMAT_VERSION,
    }


def _finish(
    out: Path, ids: list, vectors: np.ndarray, meta: dict, shard_dir: Path, computed: int
) -> dict:
    """Write the merged output, then drop the shards it was built from."""
    _write_output(out, ids, vectors, meta)
    shutil.rmtree(shard_dir, ignore_errors=True)
    return _ran(meta, out, computed)


def _concat(tables: list[pa.Table], dim: int) -> pa.Table:
    if not tables:
        return pa.table(
            {
                "movieId": pa.array([], pa.int32()),
                "embedding": vectors_to_array(np.zeros((0, dim), np.float32)),
                "ok": pa.array([], pa.int8()),
                "reason": pa.array([], pa.string()),
                "fallback": pa.array([], pa.int8()),
                "truncated": pa.array([], pa.int8()),
            }
        )
    return pa.concat_tables(tables)


def _vectors(table: pa.Table) -> np.ndarray:
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)


def _ran(meta: dict, out: Path, computed: int) -> dict:
    keys = ("model", "dim", "weights", "rows", "items_per_s", "timings", "shards", "shards_reused")
    result = {"skipped": False, "path": str(out), "computed": computed}
    result.update({k: meta[k] for k in keys})
    for k in ("posters_missing", "fallback_count", "truncated_count"):
        if k in meta:
            result[k] = meta[k]
    if "posters_failed" in meta:
        result["posters_failed"] = len(meta["posters_failed"])
    return result
