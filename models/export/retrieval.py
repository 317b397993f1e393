"""Two-tower export: the query tower for Triton, every movie's embedding, a brute-force top-k index.

Retrieval splits at the towers: the user side runs per request (raw userId -> workflow -> query
tower in Triton, like DLRM), the item side runs once here for the whole catalogue. A client asks
Triton for the query vector, takes the top k movies by dot product from the index, and can then
rank those candidates with an exported DLRM. The index is exact (numpy, one matrix product);
FAISS is used to write an extra index file only when it is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmrec.contracts import FIRST_ID, ITEM, OOV_ID, DatasetPaths, TrainRunPaths
from mmrec.errors import MmrecError
from models.export.inputs import item_id_column, model_inputs, serving_inputs
from models.export.triton import export_ensemble
from models.serving.index import TopKIndex


def export_two_tower(sources: dict[str, Any], out: Path, cfg: Any) -> dict[str, Any]:
    """Write `out/triton` (query tower ensemble) and `out/retrieval` (items + index)."""
    import merlin.models.tf  # noqa: F401
    from merlin.systems.dag.ops.tensorflow import PredictTensorflow

    retrieval = out / "retrieval"
    towers = _towers(sources, retrieval)
    query = PredictTensorflow(str(towers["query_tower"]))
    details = export_ensemble(query, sources, out / "triton", cfg.backend, cfg.max_batch_size)
    movies = _movies_path(cfg, sources)
    items = item_embeddings(sources, towers["candidate_tower"], movies)
    _write_items(items, retrieval, sources)
    details["retrieval"] = {
        "items": len(items["movieId"]),
        "known_items": int(items["known"].sum()),
        "dim": int(items["embedding"].shape[1]),
        "movies": str(movies),
        "faiss": _write_faiss(items["embedding"], retrieval),
    }
    return details


def _towers(sources: dict[str, Any], retrieval: Path) -> dict[str, Path]:
    """The run's own tower SavedModels when train wrote them, else split the whole model."""
    import merlin.models.tf  # noqa: F401
    import tensorflow as tf

    run_dir = sources.get("run_dir")
    if run_dir is not None:
        run = TrainRunPaths(run_dir)
        own = {"query_tower": run.query_tower, "candidate_tower": run.item_tower}
        if all((d / "saved_model.pb").exists() for d in own.values()):
            return own
    model = tf.keras.models.load_model(str(sources["model_dir"]), compile=False)
    if not hasattr(model, "query_encoder"):
        raise MmrecError(f"{sources['model_dir']}: not a two-tower model (no query encoder)")
    towers = {"query_tower": model.query_encoder, "candidate_tower": model.candidate_encoder}
    for name, tower in towers.items():
        tower(_one_row(tower.schema), training=False)  # a reloaded tower is unbuilt until called
        tower.save(str(retrieval / name), include_optimizer=False)
    return {name: retrieval / name for name in towers}


def _one_row(schema: Any) -> dict[str, Any]:
    """A one-row batch of out-of-vocabulary ids and zero vectors, shaped as `schema` says."""
    import tensorflow as tf

    feed = {}
    for col in schema:
        dtype = col.dtype.to_numpy
        if col.is_list and col.is_ragged:
            feed[f"{col.name}__values"] = tf.constant([OOV_ID], dtype=dtype)
            feed[f"{col.name}__offsets"] = tf.constant([0, 1], dtype=tf.int32)
        elif col.is_list:
            inner = [d.max or 1 for d in col.shape.dims[1:]]
            feed[col.name] = tf.zeros([1, *inner], dtype=dtype)
        else:
            feed[col.name] = tf.constant([OOV_ID], dtype=dtype)
    return feed


def _movies_path(cfg: Any, sources: dict[str, Any]) -> Path:
    path = Path(cfg.movies) if getattr(cfg, "movies", None) else None
    path = path or DatasetPaths.of(cfg.data_dir, cfg.dataset).movies
    if not path.exists():
        raise MmrecError(f"movies table not found: {path} (the item catalogue to embed)")
    return path


def item_embeddings(
    sources: dict[str, Any], candidate_dir: Path, movies: Path
) -> dict[str, np.ndarray]:
    """Embed every movie of movies.parquet with the candidate tower, behind the item workflow."""
    import pandas as pd
    import tensorflow as tf
    from merlin.io import Dataset
    from merlin.systems.dag.ops.tensorflow import PredictTensorflow

    etl_dir = Path(sources["etl_dir"])
    schema = PredictTensorflow(str(candidate_dir)).input_schema
    wf, tables = serving_inputs(
        etl_dir, schema, control=sources.get("control", "none"), seed=sources.get("seed", 0)
    )
    table = pd.read_parquet(movies)
    missing = [c for c in wf.input_schema.column_names if c not in table.columns]
    if missing:
        raise MmrecError(f"{movies}: lacks column(s) {missing} the item workflow needs")
    raw = table[wf.input_schema.column_names].drop_duplicates(ITEM).reset_index(drop=True)
    for col in raw.columns:
        if raw[col].isna().any() and pd.api.types.is_numeric_dtype(raw[col]):
            raw[col] = raw[col].fillna(0)  # a missing year: out of vocabulary, as when served
        if col == "genres":
            raw[col] = [list(g) if g is not None else [] for g in raw[col]]
    raw = raw.astype({c: wf.input_schema[c].dtype.to_numpy for c in raw.columns if c != "genres"})
    encoded = wf.transform(Dataset(raw, cpu=True)).to_ddf().compute().reset_index(drop=True)
    tower = tf.saved_model.load(str(candidate_dir)).signatures["serving_default"]
    specs = tower.structured_input_signature[1]  # e.g. list offsets as int64, whatever we hold
    item_id = item_id_column(wf)
    vectors = []
    for start in range(0, len(encoded), 4096):
        part = encoded.iloc[start : start + 4096].reset_index(drop=True)
        feed = model_inputs(part, schema, tables, item_id)
        result = tower(**{k: tf.cast(v, specs[k].dtype) for k, v in feed.items()})
        vectors.append(np.asarray(next(iter(result.values()))))
    codes = encoded[item_id].to_numpy().astype(np.int64)
    return {
        "movieId": raw[ITEM].to_numpy().astype(np.int32),
        "item_index": codes,
        "known": codes >= FIRST_ID,
        "embedding": np.concatenate(vectors).astype(np.float32),
    }


def _write_items(items: dict[str, np.ndarray], folder: Path, sources: dict[str, Any]) -> None:
    import pyarrow as pa

    from mmrec.io import write_table_atomic

    emb = items["embedding"]
    flat = pa.array(emb.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "movieId": pa.array(items["movieId"], type=pa.int32()),
            "item_index": pa.array(items["item_index"], type=pa.int64()),
            "known": pa.array(items["known"]),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, emb.shape[1]),
        }
    )
    write_table_atomic(folder / "items.parquet", table)
    TopKIndex(emb, items["movieId"], **_scoring(items, sources)).save(folder / "index")


def _scoring(items: dict[str, np.ndarray], sources: dict[str, Any]) -> dict[str, Any]:
    """Retrieval as training evaluated it: dot / temperature (+ log popularity if corrected)."""
    cfg = sources.get("train_config") or {}
    temperature = float((cfg.get("resolved") or {}).get("temperature") or 1.0)
    bias = None
    run_dir = sources.get("run_dir")
    pop_path = TrainRunPaths(run_dir).item_log_popularity if run_dir else None
    if cfg.get("popularity_correction") and pop_path is not None and pop_path.exists():
        pop = np.load(pop_path).astype(np.float32)
        idx = items["item_index"]
        bias = np.where(idx < len(pop), pop[np.minimum(idx, len(pop) - 1)], 0.0)
        bias = np.where(items["known"], bias, 0.0).astype(np.float32)
    return {"temperature": temperature, "bias": bias}


def _write_faiss(vectors: np.ndarray, folder: Path) -> str | None:
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    path = folder / "index" / "faiss.index"
    faiss.write_index(index, str(path))
    return str(path)
