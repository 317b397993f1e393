"""Scoring trained models on a split: ranking rows for DLRM, all-movie retrieval for two-tower.

Used by training (early stopping, final metrics) and by `mmrec evaluate` (on reloaded models),
so both report the same numbers for the same weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrec.contracts import ITEM, USER
from models.data import Interactions, item_table
from models.inputs import EtlRun, GatherEmbeddings
from models.metrics import RetrievalAccumulator
from models.scoring import predict_ranking, ranking_metrics, retrieval_accumulate


def _frame_loader(df: Any, schema: Any, tables: dict[str, np.ndarray], batch_size: int) -> Any:
    import merlin.models.tf as mm
    from merlin.io import Dataset

    read = [c for c in schema.column_names if c not in tables]
    ds = Dataset(df[read], schema=schema.select_by_name(read), cpu=True)
    loader = mm.Loader(ds, batch_size=batch_size, shuffle=False)
    if tables:
        loader = loader.map(GatherEmbeddings(tables, schema))
    return loader


class RetrievalData:
    """Everything retrieval evaluation needs besides the towers, built once per training run."""

    def __init__(
        self,
        run: EtlRun,
        schema: Any,
        tables: dict[str, np.ndarray],
        interactions: tuple[Interactions, Interactions] | None = None,
    ) -> None:
        """`interactions`: (train, valid) already read, so evaluation reads them once per ETL run."""
        import pandas as pd

        from models.baselines import popularity_scores

        self.run = run
        if interactions is None:
            interactions = (Interactions.read(run.train_dir), Interactions.read(run.valid_dir))
        self.train, self.valid = interactions
        self.cold_ids = run.cold_item_ids
        item_cols = [c for c in schema.column_names if c != USER and c in run.schema.column_names]
        item_cols = [c for c in item_cols if c in ("movieId", "genres", "year")]
        items = item_table(run, item_cols)
        self.item_ids = items[ITEM].to_numpy(np.int64)
        item_schema = schema.select_by_name([*item_cols, *tables])
        self.item_loader = _frame_loader(items, item_schema, tables, 8192)
        users = np.unique(self.valid.positives().users)
        user_df = pd.DataFrame({USER: users.astype(run.schema[USER].dtype.to_numpy)})
        self.user_loader = _frame_loader(user_df, schema.select_by_name([USER]), {}, 8192)
        self.log_popularity = np.log1p(popularity_scores(self.train, run.n_items)).astype(
            np.float32
        )


def tower_vectors(encoder: Any, loader: Any, id_column: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) from one tower over a non-shuffled loader."""
    ids, vecs = [], []
    for x, _ in loader:
        out = encoder(x, training=False)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        vecs.append(np.asarray(out, dtype=np.float32))
        ids.append(np.asarray(x[id_column]).reshape(-1))
    return np.concatenate(ids).astype(np.int64), np.concatenate(vecs)


def retrieval_metrics_of(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """recall@10/50, ndcg@10, MRR over all movies (and over cold movies when the split has any)."""
    return {k: acc.result() for k, acc in retrieval_accumulators_of(*args, **kwargs).items()}


def retrieval_accumulators_of(
    query_encoder: Any,
    item_encoder: Any,
    data: RetrievalData,
    *,
    temperature: float,
    popularity_correction: bool,
    users: np.ndarray | None = None,
    cold: bool = True,
) -> dict[str, RetrievalAccumulator]:
    """The towers through the shared retrieval loop, per candidate set (per-user values kept)."""
    user_ids, user_vecs = tower_vectors(query_encoder, data.user_loader, USER)
    item_ids, item_vecs = tower_vectors(item_encoder, data.item_loader, ITEM)
    row = np.full(int(user_ids.max()) + 1, -1, dtype=np.int64)
    row[user_ids] = np.arange(user_ids.size)

    def scorer(candidates: np.ndarray, correct: bool) -> Any:
        col = np.searchsorted(item_ids, candidates)
        v = item_vecs[col]
        bias = data.log_popularity[candidates] if correct else 0.0

        def score(block: np.ndarray) -> np.ndarray:
            return (user_vecs[row[block]] @ v.T) / temperature + bias

        return score

    out: dict[str, RetrievalAccumulator] = {}
    variants = {"all": item_ids}
    if cold and data.cold_ids.size:
        variants["cold"] = np.intersect1d(item_ids, data.cold_ids)
    for name, cands in variants.items():
        out[name] = retrieval_accumulate(
            scorer(cands, popularity_correction), cands, data.train, data.valid, users=users
        )
        if popularity_correction and users is None:
            out[f"{name}_uncorrected"] = retrieval_accumulate(
                scorer(cands, False), cands, data.train, data.valid
            )
    return out


def ranking_metrics_of(model: Any, loader: Any, run: EtlRun) -> dict[str, Any]:
    labels, probs, items = predict_ranking(model, loader)
    return ranking_metrics(labels, probs, items, run.cold_item_ids)
