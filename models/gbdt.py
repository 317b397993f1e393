"""LightGBM as the ranking baseline a practitioner would reach for before a DLRM.

It sees what the DLRM sees (userId and movieId as categoricals, genres multi-hot, year, and for
a content variant the same pretrained vectors) plus the features a GBDT lives on: per-user and
per-movie smoothed positive rates, out-of-fold on train (each train row's rates come from the
other folds, so a row never sees its own label), and interaction counts. Valid rows get rates
from all of train. Early stopping watches a seeded slice of train, never the reported rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrec.contracts import FIRST_ID
from models.baselines import smoothed_rate
from models.data import Interactions

PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "cat_l2": 10.0,
    "max_cat_to_onehot": 8,
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
}


@dataclass(frozen=True)
class ItemFeatures:
    """Per encoded movie id: genres multi-hot and year id (from the ETL's item columns)."""

    genres: np.ndarray  # [n_items, n_genres] uint8
    year: np.ndarray  # [n_items] int64 (Categorify id; 0 when unknown)

    @classmethod
    def from_table(cls, items: Any, n_items: int, movie: str = "movieId") -> ItemFeatures:
        ids = items[movie].to_numpy(np.int64)
        lists = [np.asarray(g, dtype=np.int64) for g in items["genres"]]
        n_genres = int(max((g.max(initial=0) for g in lists), default=0)) + 1
        genres = np.zeros((n_items, n_genres), dtype=np.uint8)
        for i, g in zip(ids, lists, strict=True):
            genres[i, g[g >= FIRST_ID]] = 1  # lower ids are Categorify's reserved rows
        year = np.zeros(n_items, dtype=np.int64)
        year[ids] = items["year"].to_numpy(np.int64)
        real = genres[:, FIRST_ID:] if n_genres > FIRST_ID else genres[:, :0]
        return cls(real, year)


def _rates(
    train: Interactions,
    users: np.ndarray,
    items: np.ndarray,
    sizes: tuple[int, int],
    strength: float,
) -> np.ndarray:
    """[rows, 4]: smoothed user rate, user count, smoothed movie rate, movie count (from train)."""
    prior = float(train.labels.mean())
    n_users, n_items = sizes
    ur = smoothed_rate(train.users, train.labels, n_users, prior, strength)
    mr = smoothed_rate(train.items, train.labels, n_items, prior, strength)
    uc = np.bincount(train.users, minlength=n_users)[:n_users]
    mc = np.bincount(train.items, minlength=n_items)[:n_items]
    return np.column_stack([ur[users], np.log1p(uc[users]), mr[items], np.log1p(mc[items])])


def out_of_fold_rates(
    train: Interactions, sizes: tuple[int, int], strength: float, folds: int, seed: int
) -> np.ndarray:
    """Each train row's rates computed from the other folds (counts too, for one scale)."""
    fold = np.random.default_rng(seed).integers(0, folds, train.users.size)
    out = np.empty((train.users.size, 4))
    for f in range(folds):
        rows = fold == f
        rest = Interactions(train.users[~rows], train.items[~rows], train.labels[~rows])
        out[rows] = _rates(rest, train.users[rows], train.items[rows], sizes, strength)
    # counts from k-1 folds are (k-1)/k of the full ones: rescale so train and valid agree
    out[:, 1] = np.log1p(np.expm1(out[:, 1]) * folds / (folds - 1))
    out[:, 3] = np.log1p(np.expm1(out[:, 3]) * folds / (folds - 1))
    return out


def design(
    inter: Interactions,
    rates: np.ndarray,
    items: ItemFeatures,
    vectors: np.ndarray | None,
    with_ids: bool,
) -> np.ndarray:
    """The feature matrix: [userId, movieId,] year, rates and counts, genres, vectors."""
    parts = []
    if with_ids:
        parts.append(np.column_stack([inter.users, inter.items]).astype(np.float64))
    parts += [items.year[inter.items, None].astype(np.float64), rates]
    parts.append(items.genres[inter.items].astype(np.float64))
    if vectors is not None:
        parts.append(np.asarray(vectors, dtype=np.float64)[inter.items])
    return np.hstack(parts)


def fit_predict(
    train: Interactions,
    valid: Interactions,
    items: ItemFeatures,
    *,
    sizes: tuple[int, int],
    vectors: np.ndarray | None = None,
    with_ids: bool = True,
    strength: float = 5.0,
    folds: int = 5,
    es_share: float = 0.1,
    max_rounds: int = 3000,
    seed: int = 0,
    threads: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Probabilities for every valid row, and what the fit chose (rounds, slice logloss)."""
    import lightgbm as lgb

    train_rates = out_of_fold_rates(train, sizes, strength, folds, seed)
    valid_rates = _rates(train, valid.users, valid.items, sizes, strength)
    x_train = design(train, train_rates, items, vectors, with_ids)
    x_valid = design(valid, valid_rates, items, vectors, with_ids)
    slice_rows = np.random.default_rng(seed + 1).random(train.users.size) < es_share
    categorical = [0, 1, 2] if with_ids else [0]  # ids and the year id
    params = {**PARAMS, "seed": seed, "num_threads": threads}
    fit_set = lgb.Dataset(
        x_train[~slice_rows],
        train.labels[~slice_rows],
        categorical_feature=categorical,
        free_raw_data=True,
    )
    slice_set = lgb.Dataset(
        x_train[slice_rows], train.labels[slice_rows], reference=fit_set, free_raw_data=True
    )
    booster = lgb.train(
        params,
        fit_set,
        num_boost_round=max_rounds,
        valid_sets=[slice_set],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    probs = booster.predict(x_valid, num_iteration=booster.best_iteration)
    info = {
        "rounds": int(booster.best_iteration),
        "slice_logloss": float(booster.best_score["valid_0"]["binary_logloss"]),
        "features": int(x_train.shape[1]),
        "early_stopping": f"{es_share:.0%} of train rows (seeded), not the reported rows",
    }
    return probs, info
