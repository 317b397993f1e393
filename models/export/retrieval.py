"""Two-tower export: the query tower for Triton, every movie's embedding, a brute-force top-k index.

Retrieval splits at the towers: the user side runs per request (raw userId -> workflow -> query
tower in Triton, like DLRM), the item side runs once here for the whole catalogue. A client asks
Triton for the query vector, takes the top k movies by dot product from the index, and can then
rank those candidates with an exported DLRM. The index is exact (numpy, one matrix product);
FAISS is used to write an extra index file only when it is installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import MmrecError

OOV_INDEX = 2
FIRST_REAL_ID = 3  # Categorify: 0 padding, 1 null, 2 out of vocabulary


def export_two_tower(sources: dict[str, Any], out: Path, cfg: Any) -> dict[str, Any]:
    """Write `out/triton` (query tower ensemble) and `out/retrieval` (items + index)."""
    import merlin.models.tf  # noqa: F401
    from merlin.systems.dag.ops.tensorflow import PredictTensorflow

    from models.export.ensemble import export_ensemble

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
    own = {"query_tower": "query_tower", "candidate_tower": "item_tower"}
    if run_dir is not None and all((run_dir / d / "saved_model.pb").exists() for d in own.values()):
        return {name: run_dir / d for name, d in own.items()}
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
            feed[f"{col.name}__values"] = tf.constant([OOV_INDEX], dtype=dtype)
            feed[f"{col.name}__offsets"] = tf.constant([0, 1], dtype=tf.int32)
        elif col.is_list:
            inner = [d.max or 1 for d in col.shape.dims[1:]]
            feed[col.name] = tf.zeros([1, *inner], dtype=dtype)
        else:
            feed[col.name] = tf.constant([OOV_INDEX], dtype=dtype)
    return feed


def _movies_path(cfg: Any, sources: dict[str, Any]) -> Path:
    from mmrec.paths import DatasetPaths

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

    from models.export.ensemble import _item_id_column, serving_inputs
    from models.export.reference import model_inputs

    etl_dir = Path(sources["etl_dir"])
    schema = PredictTensorflow(str(candidate_dir)).input_schema
    wf, tables = serving_inputs(
        etl_dir, schema, control=sources.get("control", "none"), seed=sources.get("seed", 0)
    )
    table = pd.read_parquet(movies)
    missing = [c for c in wf.input_schema.column_names if c not in table.columns]
    if missing:
        raise MmrecError(f"{movies}: lacks column(s) {missing} the item workflow needs")
    raw = table[wf.input_schema.column_names].drop_duplicates("movieId").reset_index(drop=True)
    for col in raw.columns:
        if raw[col].isna().any() and pd.api.types.is_numeric_dtype(raw[col]):
            raw[col] = raw[col].fillna(0)  # a missing year: out of vocabulary, as when served
        if col == "genres":
            raw[col] = [list(g) if g is not None else [] for g in raw[col]]
    raw = raw.astype({c: wf.input_schema[c].dtype.to_numpy for c in raw.columns if c != "genres"})
    encoded = wf.transform(Dataset(raw, cpu=True)).to_ddf().compute().reset_index(drop=True)
    tower = tf.saved_model.load(str(candidate_dir)).signatures["serving_default"]
    specs = tower.structured_input_signature[1]  # e.g. list offsets as int64, whatever we hold
    item_id = _item_id_column(wf)
    vectors = []
    for start in range(0, len(encoded), 4096):
        part = encoded.iloc[start : start + 4096].reset_index(drop=True)
        feed = model_inputs(part, schema, tables, item_id)
        result = tower(**{k: tf.cast(v, specs[k].dtype) for k, v in feed.items()})
        vectors.append(np.asarray(next(iter(result.values()))))
    codes = encoded[item_id].to_numpy().astype(np.int64)
    return {
        "movieId": raw["movieId"].to_numpy().astype(np.int32),
        "item_index": codes,
        "known": codes >= FIRST_REAL_ID,
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
    pop_path = sources["run_dir"] / "item_log_popularity.npy" if sources.get("run_dir") else None
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


class TopKIndex:
    """Exact maximum-inner-product search over item vectors: one matrix product per batch."""

    def __init__(
        self,
        vectors: np.ndarray,
        ids: np.ndarray,
        temperature: float = 1.0,
        bias: np.ndarray | None = None,
    ) -> None:
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise MmrecError(
                f"index needs [n, d] vectors and n ids, got {vectors.shape}, {len(ids)}"
            )
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.ids = np.asarray(ids)
        self.temperature = float(temperature)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    def save(self, folder: str | os.PathLike[str]) -> None:
        from mmrec.io import atomic_path, write_json_atomic

        arrays = {"vectors.npy": self.vectors, "ids.npy": self.ids}
        if self.bias is not None:
            arrays["bias.npy"] = self.bias
        for name, array in arrays.items():
            with atomic_path(Path(folder) / name) as tmp, open(tmp, "wb") as f:
                np.save(f, array)
        write_json_atomic(Path(folder) / "index.json", {"temperature": self.temperature})

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> TopKIndex:
        from mmrec.io import read_json

        folder = Path(folder)
        if not (folder / "vectors.npy").exists():
            raise MmrecError(f"no top-k index in {folder} (expected vectors.npy and ids.npy)")
        bias = np.load(folder / "bias.npy") if (folder / "bias.npy").exists() else None
        meta = read_json(folder / "index.json") if (folder / "index.json").exists() else {}
        return cls(
            np.load(folder / "vectors.npy"),
            np.load(folder / "ids.npy"),
            temperature=meta.get("temperature", 1.0),
            bias=bias,
        )

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k ids and scores per query row, best first."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.vectors.shape[1]:
            raise MmrecError(f"query dim {queries.shape[1]} != item dim {self.vectors.shape[1]}")
        k = max(1, min(int(k), len(self.ids)))
        scores = (queries @ self.vectors.T) / self.temperature
        if self.bias is not None:
            scores = scores + self.bias
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return self.ids[top], np.take_along_axis(top_scores, order, axis=1)
