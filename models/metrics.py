"""Evaluation metrics in plain numpy, so every number in a report is computed the same way.

Ranking: AUC (rank statistic, ties counted as one half) and logloss. Retrieval: recall@k,
ndcg@k and MRR over a full score matrix (every candidate item, not in-batch), with the items a
user already rated in train excluded before ranking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
    """Sums recall@k, ndcg@k and reciprocal ranks over users, one block of users at a time.

    `add` takes a block of full score rows (users x all items), so memory stays at one block
    even when users x items would not fit.
    """

    def __init__(self, ks: Sequence[int] = (10, 50), ndcg_ks: Sequence[int] = (10,)) -> None:
        self.ks = tuple(sorted(set(ks) | set(ndcg_ks)))
        self.recall_ks = tuple(ks)
        self.ndcg_ks = tuple(ndcg_ks)
        self.users = 0
        self.recall = dict.fromkeys(self.recall_ks, 0.0)
        self.ndcg = dict.fromkeys(self.ndcg_ks, 0.0)
        self.rr = 0.0

    def add(
        self,
        scores: np.ndarray,
        relevant: Sequence[np.ndarray],
        exclude: Sequence[np.ndarray] | None = None,
    ) -> None:
        """scores: [users, items]; relevant[u] / exclude[u]: item column indices for row u."""
        scores = np.array(scores, dtype=np.float64, copy=True)
        n_items = scores.shape[1]
        if exclude is not None:
            for row, ex in enumerate(exclude):
                if len(ex):
                    scores[row, ex] = -np.inf
        kmax = min(max(self.ks), n_items)
        top = np.argpartition(-scores, kmax - 1, axis=1)[:, :kmax]
        top_scores = np.take_along_axis(scores, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
        for row, rel in enumerate(relevant):
            rel = np.unique(np.asarray(rel, dtype=np.int64))
            if rel.size == 0:
                continue
            self.users += 1
            hits = np.isin(top[row], rel)
            for k in self.recall_ks:
                self.recall[k] += hits[:k].sum() / rel.size
            for k in self.ndcg_ks:
                ideal = discounts[: min(k, rel.size)].sum()
                self.ndcg[k] += (hits[:k] * discounts[:k]).sum() / ideal
            # rank of the best relevant item among all candidates; ties take the expected
            # position under a random order, so a constant scorer cannot look perfect
            best = scores[row, rel].max()
            if np.isfinite(best):
                above = np.count_nonzero(scores[row] > best)
                tied = np.count_nonzero(scores[row] == best)
                tied_relevant = np.count_nonzero(scores[row, rel] == best)
                self.rr += 1.0 / (above + (tied + 1) / (tied_relevant + 1))

    def result(self) -> dict[str, float]:
        n = max(self.users, 1)
        out = {f"recall@{k}": self.recall[k] / n for k in self.recall_ks}
        out.update({f"ndcg@{k}": self.ndcg[k] / n for k in self.ndcg_ks})
        out["mrr"] = self.rr / n
        out["users"] = self.users
        return out


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
