"""Shared scoring loops for models and baselines: ranking rows, and retrieval over all movies.

Models and baselines go through the same functions, so a difference in a report is a difference
between scorers, never between two ways of counting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.data import Interactions
from models.metrics import RetrievalAccumulator, auc, logloss


def ranking_metrics(
    labels: np.ndarray, probs: np.ndarray, items: np.ndarray, cold_ids: np.ndarray
) -> dict[str, dict[str, float]]:
    """AUC and logloss on all rows, and on cold / warm item rows when the split has cold items."""

    def one(mask: np.ndarray) -> dict[str, float]:
        return {
            "auc": auc(labels[mask], probs[mask]),
            "logloss": logloss(labels[mask], probs[mask]),
            "rows": int(mask.sum()),
            "positive_rate": float(labels[mask].mean()) if mask.any() else float("nan"),
        }

    out = {"all": one(np.ones(labels.size, dtype=bool))}
    if cold_ids.size:
        cold = np.isin(items, cold_ids)
        out["cold"] = one(cold)
        out["warm"] = one(~cold)
    return out


def predict_ranking(model: Any, loader: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, probabilities, movie ids) for every row of a non-shuffled loader."""
    from mmrec.contracts import ITEM

    labels, probs, items = [], [], []
    for x, y in loader:
        p = model(x, training=False)
        if isinstance(p, dict):
            p = next(iter(p.values()))
        probs.append(np.asarray(p, dtype=np.float64).reshape(-1))
        labels.append(np.asarray(y).reshape(-1))
        items.append(np.asarray(x[ITEM]).reshape(-1))
    return np.concatenate(labels), np.concatenate(probs), np.concatenate(items)


ScoreFn = Callable[[np.ndarray], np.ndarray]  # user ids [u] -> scores [u, candidates]


def retrieval_eval(*args: Any, **kwargs: Any) -> dict[str, float]:
    """Mean metrics of `retrieval_accumulate` (same arguments)."""
    return retrieval_accumulate(*args, **kwargs).result()


def retrieval_accumulate(
    score_fn: ScoreFn,
    candidates: np.ndarray,
    train: Interactions,
    valid: Interactions,
    *,
    users: np.ndarray | None = None,
    ks: tuple[int, ...] = (10, 50),
    ndcg_ks: tuple[int, ...] = (10,),
    chunk: int | None = None,
) -> RetrievalAccumulator:
    """Top-k over every candidate movie for each user with a valid positive among them.

    Relevant: the user's valid positives that are candidates. Excluded: everything the user
    rated in train (any label). `users` restricts to a subset (early stopping uses a sample).
    The accumulator keeps each user's values, for intervals over users.
    """
    n = int(max(candidates.max(initial=0), train.items.max(initial=0), valid.items.max(initial=0)))
    column = np.full(n + 1, -1, dtype=np.int64)
    column[candidates] = np.arange(candidates.size)
    pos = valid.positives()
    keep = column[pos.items] >= 0
    relevant = Interactions(pos.users[keep], column[pos.items[keep]], pos.labels[keep]).by_user()
    seen_train = train.by_user()
    eval_users = np.array(sorted(relevant), dtype=np.int64)
    if users is not None:
        eval_users = np.intersect1d(eval_users, users)
    acc = RetrievalAccumulator(ks, ndcg_ks)
    if chunk is None:  # about 16M scores per block, whatever the catalogue size
        chunk = int(np.clip((1 << 24) // max(candidates.size, 1), 16, 4096))
    for start in range(0, eval_users.size, chunk):
        block = eval_users[start : start + chunk]
        scores = score_fn(block)
        rel = [relevant[int(u)] for u in block]
        exclude = []
        for u in block:
            cols = column[seen_train.get(int(u), np.zeros(0, np.int64))]
            exclude.append(cols[cols >= 0])
        acc.add(scores, rel, exclude, user_ids=block)
    return acc
