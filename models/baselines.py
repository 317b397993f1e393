"""Baselines scored on the same split as the models, so every model number has a floor beside it.

Ranking: smoothed positive rates per user, per movie, and their combination in logit space
(user + movie - global, i.e. naive Bayes with a shared prior). Retrieval: popularity (train
positive count). Smoothing pulls rare users / movies towards the global rate with `strength`
pseudo-ratings; cold movies get the global rate, so their combined score is the user's.
"""

from __future__ import annotations

import numpy as np

from mmrec.config import BASELINE_STRENGTH
from models.data import Interactions


def smoothed_rate(
    keys: np.ndarray, labels: np.ndarray, size: int, prior: float, strength: float
) -> np.ndarray:
    """(positives + strength * prior) / (count + strength) for every key 0..size-1."""
    pos = np.bincount(keys, weights=labels.astype(np.float64), minlength=size)[:size]
    cnt = np.bincount(keys, minlength=size)[:size].astype(np.float64)
    return (pos + strength * prior) / (cnt + strength)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def ranking_baselines(
    train: Interactions, valid: Interactions, strength: float = BASELINE_STRENGTH
) -> dict[str, np.ndarray]:
    """Probabilities for every valid row from each ranking baseline."""
    prior = float(train.labels.mean())
    n_users = int(max(train.users.max(), valid.users.max())) + 1
    n_items = int(max(train.items.max(), valid.items.max())) + 1
    user_rate = smoothed_rate(train.users, train.labels, n_users, prior, strength)
    item_rate = smoothed_rate(train.items, train.labels, n_items, prior, strength)
    u = user_rate[valid.users]
    m = item_rate[valid.items]
    combined = 1.0 / (1.0 + np.exp(-(_logit(u) + _logit(m) - _logit(np.array(prior)))))
    return {
        "global_rate": np.full(valid.users.size, prior),
        "user_rate": u,
        "movie_rate": m,
        "user_movie_rate": combined,
    }


def popularity_scores(train: Interactions, n_items: int) -> np.ndarray:
    """Train positive count per encoded movie id (the retrieval baseline's score)."""
    pos = train.positives()
    return np.bincount(pos.items, minlength=n_items)[:n_items].astype(np.float64)
