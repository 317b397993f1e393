"""The feature store: one row per movie, every modality's vector and a has-flag, optional PCA.

Entry point: `build_feature_store(cfg)`. numpy and pyarrow only, so it runs in the pipeline env too
(rebuilding with another PCA size needs no PyTorch). Movies without a vector get zeros and flag 0,
so the ETL can join on movieId without nulls; PCA is fitted on present rows only, so the zeros of
missing movies do not pull the components.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.config import FeaturesConfig
from mmrec.contracts import MODALITIES, DatasetPaths
from mmrec.errors import MmrecError
from mmrec.io import file_digest, write_table_atomic

META_KEY = "mmrec"
STORE_VERSION = 1


def vectors_to_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """A float32 [n, d] matrix as a fixed_size_list<float32>[d] column."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-d matrix, got shape {vectors.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """movieIds, the float32 matrix and the `mmrec` metadata of one features/<m>.parquet."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise MmrecError(f"{path}: cannot read Parquet: {exc}") from exc
    for name in ("movieId", "embedding"):
        if name not in table.column_names:
            raise MmrecError(f"{path}: missing column {name!r}")
    col_type = table.schema.field("embedding").type
    if not (pa.types.is_fixed_size_list(col_type) and col_type.value_type == pa.float32()):
        raise MmrecError(f"{path}: column 'embedding' is {col_type}, not fixed_size_list<float>")
    dim = col_type.list_size
    col = table.column("embedding").combine_chunks()
    if col.null_count:
        raise MmrecError(f"{path}: column 'embedding' has {col.null_count} null rows")
    vectors = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
    ids = np.asarray(table.column("movieId").to_numpy(), np.int64)
    if len(np.unique(ids)) != len(ids):
        raise MmrecError(f"{path}: movieId values are not unique")
    if not np.isfinite(vectors).all():
        bad = int(ids[~np.isfinite(vectors).all(axis=1)][0])
        raise MmrecError(f"{path}: movieId {bad} has a non-finite value in 'embedding'")
    raw = (table.schema.metadata or {}).get(META_KEY.encode(), b"{}")
    return ids, vectors, json.loads(raw)


def pca(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, dict]:
    """Project onto the top `dim` principal axes (float64 SVD); each axis' sign fixed so its
    largest-magnitude loading is positive, so the result does not depend on LAPACK's choice."""
    n, d = vectors.shape
    if not 0 < dim <= min(n, d):
        raise MmrecError(
            f"PCA to {dim} dimensions needs 1 <= dim <= min(present rows {n}, dimension {d})"
        )
    x = vectors.astype(np.float64)
    mean = x.mean(axis=0)
    x -= mean
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    components = vt[:dim]
    signs = np.sign(components[np.arange(dim), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    variance = s**2
    total = variance.sum()
    ratio = (variance[:dim] / total) if total > 0 else np.zeros(dim)
    info = {
        "dim": dim,
        "from_dim": d,
        "fitted_rows": n,
        "explained_variance_ratio": [round(float(r), 6) for r in ratio],
        "explained_variance_total": round(float(ratio.sum()), 6),
    }
    return (x @ components.T).astype(np.float32), info


def build_feature_store(cfg: FeaturesConfig) -> dict:
    """Write `<root>/feature_store.parquet` from movies.parquet and features/<m>.parquet.

    The store holds every modality of `cfg.modalities` (which must exist) and any other one already
    extracted, so extracting one modality again does not drop the other from the store.
    """
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    if not paths.movies.exists():
        raise MmrecError(f"{paths.movies} not found: run `mmrec data` first")
    modalities = [
        m for m in MODALITIES if m in cfg.modalities or paths.modality_embeddings(m).exists()
    ]
    modalities += [m for m in cfg.modalities if m not in MODALITIES]
    unknown_pca = sorted(set(cfg.pca) - set(modalities))
    if unknown_pca:
        raise MmrecError(f"--pca names {unknown_pca}, which are not among the modalities")
    inputs = {"movies": paths.movies}
    for m in modalities:
        inputs[m] = paths.modality_embeddings(m)
        if not inputs[m].exists():
            raise MmrecError(
                f"{inputs[m]} not found: run `mmrec features --dataset {cfg.dataset}` first"
            )
    fp = json.dumps(
        {
            "version": STORE_VERSION,
            "inputs": {k: file_digest(p) for k, p in inputs.items()},
            "pca": {m: cfg.pca[m] for m in sorted(cfg.pca)},
        },
        sort_keys=True,
    )
    out = paths.feature_store
    if not cfg.force and out.exists():
        try:
            old = json.loads((pq.read_schema(out).metadata or {}).get(META_KEY.encode(), b"{}"))
        except (OSError, pa.ArrowException, ValueError):
            old = {}
        if old.get("input_fingerprint") == fp:
            return {"skipped": True, "path": str(out), "rows": old.get("rows")}

    movie_ids = np.asarray(pq.read_table(paths.movies, columns=["movieId"]).column(0).to_numpy())
    order = np.sort(movie_ids.astype(np.int64))
    if len(np.unique(order)) != len(order):
        raise MmrecError(f"{paths.movies}: movieId values are not unique")
    columns: dict[str, pa.Array] = {"movieId": pa.array(order.astype(np.int32), pa.int32())}
    meta: dict = {"rows": len(order), "modalities": {}}
    for m in modalities:
        ids, vectors, source = read_embeddings(inputs[m])
        pos = np.searchsorted(order, ids)
        known = (pos < len(order)) & (order[np.minimum(pos, len(order) - 1)] == ids)
        if not known.all():
            raise MmrecError(f"{inputs[m]}: movieId {int(ids[~known][0])} is not in {paths.movies}")
        info = {k: source.get(k) for k in ("model", "weights", "dim")}
        info["dim"] = vectors.shape[1]
        if m in cfg.pca:
            vectors, info["pca"] = pca(vectors, int(cfg.pca[m]))
        full = np.zeros((len(order), vectors.shape[1]), np.float32)
        full[pos] = vectors
        flags = np.zeros(len(order), np.int8)
        flags[pos] = 1
        info.update(present=int(flags.sum()), missing=int(len(order) - flags.sum()))
        info["output_dim"] = int(full.shape[1])
        columns[f"{m}_embedding"] = vectors_to_array(full)
        columns[f"has_{m}"] = pa.array(flags, pa.int8())
        meta["modalities"][m] = info
    meta["input_fingerprint"] = fp
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})
    write_table_atomic(out, table)
    summary = {"skipped": False, "path": str(out), "rows": len(order)}
    for m, info in meta["modalities"].items():
        summary[m] = {k: info[k] for k in ("output_dim", "present", "missing")}
        if "pca" in info:
            summary[m]["explained_variance"] = info["pca"]["explained_variance_total"]
    return summary
