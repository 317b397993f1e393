"""Evaluation metrics in plain numpy, so every number in a report is computed the same way.

Ranking: AUC (rank statistic, ties counted as one half) and logloss. Retrieval: recall@k,
ndcg@k and MRR over a full score matrix (every candidate item, not in-batch), with the items a
user already rated in train excluded before ranking, and ties counted at their expected value
under a random order. `weighted_auc` and `weighted_logloss` are the same metrics with a weight
per row, which is what a bootstrap over users needs (models/intervals.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # average ranks (1-based) over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities (clipped so 0 and 1 stay finite)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), eps, 1.0 - eps)
    if y.size == 0:
        return float("nan")
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


class RetrievalAccumulator:
    """recall@k, ndcg@k and reciprocal rank per user, one block of users at a time.

    `add` takes a block of full score rows (users x all items), so memory stays at one block
    even when users x items would not fit. Ties are counted at their expected value under a
    uniformly random order of the tied items (the position of each tied group is known, only
    its inner order is not), so a constant scorer scores exactly what random ranking scores in
    expectation, and no scorer gains from the order in which its ties happen to be stored.
    Per-user values are kept (`per_user`) for bootstrap intervals over users.
    """

    def __init__(self, ks: Sequence[int] = (10, 50), ndcg_ks: Sequence[int] = (10,)) -> None:
        self.ks = tuple(sorted(set(ks) | set(ndcg_ks)))
        self.recall_ks = tuple(ks)
        self.ndcg_ks = tuple(ndcg_ks)
        self._users: list[int] = []
        self._values: dict[str, list[float]] = {name: [] for name in self.metric_names}

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (
            *(f"recall@{k}" for k in self.recall_ks),
            *(f"ndcg@{k}" for k in self.ndcg_ks),
            "mrr",
        )

    @property
    def users(self) -> int:
        return len(self._users)

    def add(
        self,
        scores: np.ndarray,
        relevant: Sequence[np.ndarray],
        exclude: Sequence[np.ndarray] | None = None,
        user_ids: Sequence[int] | None = None,
    ) -> None:
        """scores: [users, items]; relevant[u] / exclude[u]: item column indices for row u.

        Scores keep their dtype (float32 stays float32: widening changes no order or tie).
        """
        scores = np.array(scores, copy=True)
        if not np.issubdtype(scores.dtype, np.floating):
            scores = scores.astype(np.float64)
        n_items = scores.shape[1]
        if exclude is not None:
            for row, ex in enumerate(exclude):
                if len(ex):
                    scores[row, ex] = -np.inf
        kmax = min(max(self.ks), n_items)
        top = np.argpartition(-scores, kmax - 1, axis=1)[:, :kmax]
        top_scores = np.take_along_axis(scores, top, axis=1)
        top_scores = -np.sort(-top_scores, axis=1)
        discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
        for row, rel in enumerate(relevant):
            rel = np.unique(np.asarray(rel, dtype=np.int64))
            if rel.size == 0:
                continue
            self._users.append(int(user_ids[row]) if user_ids is not None else len(self._users))
            line = scores[row]
            rel_scores = np.sort(line[rel])
            expected = _expected_relevance(line, top_scores[row], rel_scores)
            for k in self.recall_ks:
                self._values[f"recall@{k}"].append(float(expected[:k].sum() / rel.size))
            for k in self.ndcg_ks:
                ideal = discounts[: min(k, rel.size)].sum()
                dcg = float((expected[:k] * discounts[: min(k, kmax)]).sum())
                self._values[f"ndcg@{k}"].append(dcg / ideal)
            self._values["mrr"].append(_expected_reciprocal_rank(line, rel_scores))

    def per_user(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(user ids, metric name -> value per user), in the order users were added."""
        values = {k: np.asarray(v, dtype=np.float64) for k, v in self._values.items()}
        return np.asarray(self._users, dtype=np.int64), values

    def result(self) -> dict[str, float]:
        out: dict[str, Any] = {
            k: (float(np.mean(v)) if v else 0.0) for k, v in self._values.items()
        }
        out["users"] = self.users
        return out


def _expected_relevance(line: np.ndarray, top: np.ndarray, rel_scores: np.ndarray) -> np.ndarray:
    """P(relevant) at each of the first len(top) positions under random tie order.

    A tied group of t items, r of them relevant, fills its positions with a uniformly random
    member, so each of those positions is relevant with probability r / t. `top` is the row's
    largest scores in descending order; only its last group can continue past the cut, so only
    that group's size needs the whole row. Excluded items (-inf) are never relevant.
    """
    values, starts, counts = np.unique(-top, return_index=True, return_counts=True)
    values = -values
    sizes = counts.astype(np.float64)
    sizes[-1] = np.count_nonzero(line == values[-1])
    rel = (
        np.searchsorted(rel_scores, values, side="right")
        - np.searchsorted(rel_scores, values, side="left")
    ).astype(np.float64)
    rel[~np.isfinite(values)] = 0.0
    return np.repeat(rel / sizes, counts)


def _expected_reciprocal_rank(line: np.ndarray, rel_scores: np.ndarray) -> float:
    """E[1 / rank of the first relevant item] under random tie order (exact, not 1 / E[rank]).

    The best relevant score has `above` items strictly ahead and `t` items tied with it, `r` of
    them relevant; the first relevant one lands at tied position j with probability
    C(t - j, r - 1) / C(t, r).
    """
    best = rel_scores[-1]
    if not np.isfinite(best):
        return 0.0
    above = np.count_nonzero(line > best)
    t = int(np.count_nonzero(line == best))
    r = int(np.count_nonzero(rel_scores == best))
    if t == 1:
        return 1.0 / (above + 1)
    j = np.arange(1, t - r + 2, dtype=np.float64)
    # p_1 = r / t; p_{j+1} / p_j = (t - j - r + 1) / (t - j)
    ratios = (t - j[:-1] - r + 1) / (t - j[:-1])
    p = np.concatenate([[r / t], (r / t) * np.cumprod(ratios)])
    return float((p / (above + j)).sum())


def retrieval_metrics(
    scores: np.ndarray,
    relevant: Iterable[np.ndarray],
    exclude: Iterable[np.ndarray] | None = None,
    ks: Sequence[int] = (10, 50),
    ndcg_ks: Sequence[int] = (10,),
) -> dict[str, float]:
    """recall@k, ndcg@k, MRR for one score matrix; users without relevant items are skipped."""
    acc = RetrievalAccumulator(ks, ndcg_ks)
    acc.add(scores, list(relevant), None if exclude is None else list(exclude))
    return acc.result()
