"""Paired bootstrap over users: an interval for every metric and for every difference of metrics.

A validation split is one draw of users; a second draw would move every number. Resampling
users with replacement (all of a resampled user's rows come along) and recomputing each metric
gives its spread. The draws are shared by every scorer evaluated on the split (same seed, same
user multiplicities), so the difference between two scorers is resampled *paired*: the user
noise both see cancels, and an interval on a gain is much tighter than two separate intervals
would suggest. Several seeds of one configuration are averaged inside each draw, so a gain's
interval is the interval of the seed-mean gain.

Costs: one weighted AUC is O(rows) per draw (scores are sorted once per scorer); logloss and
retrieval metrics are O(users) per draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


class UserDraws:
    """Seeded multiplicities of the split's users, one row per bootstrap draw.

    `users` is the universe (every user with a validation row); scorers index it by user id, so
    two scorers that see different subsets of users (cold rows, retrieval users) still share
    each user's multiplicity in a draw.
    """

    def __init__(self, users: np.ndarray, samples: int, seed: int) -> None:
        self.users = np.unique(np.asarray(users, dtype=np.int64))
        self.samples = int(samples)
        rng = np.random.default_rng(seed)
        n = self.users.size
        # uint8: a user drawn 256 times among n is beyond any realistic n (Poisson(1) counts)
        counts = np.empty((self.samples, n), dtype=np.uint8)
        for b in range(self.samples):
            counts[b] = np.minimum(np.bincount(rng.integers(0, n, n), minlength=n), 255)
        self.counts = counts

    def index(self, user_ids: np.ndarray) -> np.ndarray:
        """Column of each user id in `counts` (every id must be in the universe)."""
        ids = np.asarray(user_ids, dtype=np.int64)
        col = np.searchsorted(self.users, ids)
        col = np.clip(col, 0, max(self.users.size - 1, 0))
        if ids.size and not np.array_equal(self.users[col], ids):
            missing = ids[self.users[col] != ids][:5]
            raise ValueError(f"users {missing.tolist()} are not among the bootstrap's users")
        return col


def _auc_draws(
    labels: np.ndarray, scores: np.ndarray, counts: np.ndarray, column: np.ndarray
) -> np.ndarray:
    """Weighted AUC per draw (row weight = its user's count); ties count one half.

    Scores are grouped into tie groups once; each draw is then two bincounts and a cumsum.
    """
    y = np.asarray(labels).astype(bool)
    _, group = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    n_groups = int(group.max()) + 1 if group.size else 0
    gp, gn, cp, cn = group[y], group[~y], column[y], column[~y]
    out = np.empty(counts.shape[0])
    for b, c in enumerate(counts):
        wp = np.bincount(gp, weights=c[cp], minlength=n_groups)
        wn = np.bincount(gn, weights=c[cn], minlength=n_groups)
        below = np.cumsum(wn) - wn
        denom = wp.sum() * wn.sum()
        out[b] = (wp * (below + 0.5 * wn)).sum() / denom if denom > 0 else np.nan
    return out


def _mean_draws(per_row: np.ndarray, counts: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Weighted mean of a per-row (or per-user) value in every draw, via per-user sums."""
    n = counts.shape[1]
    sums = np.bincount(column, weights=np.asarray(per_row, dtype=np.float64), minlength=n)
    rows = np.bincount(column, minlength=n).astype(np.float64)
    out = np.empty(counts.shape[0])
    for start in range(0, counts.shape[0], 64):  # float copies of 64 draws at a time
        c = counts[start : start + 64].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + 64] = (c @ sums) / (c @ rows)
    return out


def ranking_draws(
    draws: UserDraws, users: np.ndarray, labels: np.ndarray, probs: np.ndarray
) -> dict[str, np.ndarray]:
    """AUC and logloss of one scorer's rows in every draw."""
    column = draws.index(users)
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    per_row = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {
        "auc": _auc_draws(labels, probs, draws.counts, column),
        "logloss": _mean_draws(per_row, draws.counts, column),
    }


def per_user_draws(
    draws: UserDraws, users: np.ndarray, values: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Mean over users of each per-user metric (recall@k, ...) in every draw."""
    column = draws.index(users)
    return {name: _mean_draws(v, draws.counts, column) for name, v in values.items()}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


def interval(point: float, draws: np.ndarray, level: float = LEVEL) -> Interval:
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0 or not np.isfinite(point):
        return Interval(float(point), float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(d, [tail, 100 - tail])
    return Interval(float(point), float(lo), float(hi))


def gain(
    points_a: Sequence[float],
    draws_a: Sequence[np.ndarray],
    points_b: Sequence[float],
    draws_b: Sequence[np.ndarray],
    level: float = LEVEL,
) -> Interval:
    """Seed-mean of A minus seed-mean of B, with its paired interval (draws share users)."""
    point = float(np.mean(points_a) - np.mean(points_b))
    diff = np.mean(np.vstack(draws_a), axis=0) - np.mean(np.vstack(draws_b), axis=0)
    return interval(point, diff, level)


def verdict(iv: Interval, higher_is_better: bool = True) -> str:
    """'helps' or 'hurts' only when the interval excludes zero; else 'no evidence'."""
    if not (np.isfinite(iv.lo) and np.isfinite(iv.hi)):
        return "no evidence"
    lo, hi = (iv.lo, iv.hi) if higher_is_better else (-iv.hi, -iv.lo)
    if lo > 0:
        return "helps"
    if hi < 0:
        return "hurts"
    return "no evidence"
