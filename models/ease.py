"""EASE (Steck, 2019): the closed-form item-item linear autoencoder, as a retrieval baseline.

B = argmin ||X - XB||^2 + lambda ||B||^2 with diag(B) = 0 has the closed form
P = (X'X + lambda I)^-1, B = -P / diag(P), diag(B) = 0, where X is the users x items matrix of
train interactions (every rating, whatever its label, as the baseline a practitioner would run).
A user's scores are their row of X times B, so scoring goes in blocks of users.

Lambda is chosen on a slice of train (a seeded share of train rows held out, recall@10 on its
positives), never on the validation rows that are reported. The dense items x items inverse
needs about three n x n float64 matrices; beyond `max_items` it is fitted on the most-rated
movies only and every other movie ranks below them, tied (the note in the result says so).
Movies without a train interaction (cold ones) get no column: for EASE they are all tied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.data import Interactions
from models.metrics import RetrievalAccumulator
from models.scoring import retrieval_accumulate

LAMBDAS = (50.0, 150.0, 500.0, 1500.0)


def _matrix(inter: Interactions, n_users: int, columns: np.ndarray) -> Any:
    """Binary users x model-columns CSR matrix of `inter` (items outside the model dropped)."""
    from scipy import sparse

    col = columns[inter.items]
    keep = col >= 0
    x = sparse.csr_matrix(
        (np.ones(int(keep.sum()), np.float64), (inter.users[keep], col[keep])),
        shape=(n_users, int(columns.max()) + 1),
    )
    x.data[:] = 1.0  # duplicates sum: an interaction counts once
    return x


def fit_weights(x: Any, lam: float) -> np.ndarray:
    """The EASE item-item matrix B (float32) for interaction matrix `x` (users x items)."""
    g = (x.T @ x).toarray()
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    del g
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


@dataclass
class Ease:
    """A fitted EASE: item columns, weights, the lambda chosen and how it was chosen."""

    items: np.ndarray  # encoded movie id of each model column
    weights: np.ndarray  # [columns, columns]
    x: Any  # users x columns train interactions
    lam: float
    note: str = ""
    selection: dict[str, float] = field(default_factory=dict)  # lambda -> slice recall@10

    def score_fn(self, candidates: np.ndarray) -> Any:
        """Scores [users, candidates] for `retrieval_eval`; candidates outside the model tie last."""
        pos = np.searchsorted(self.items, candidates)
        pos = np.clip(pos, 0, self.items.size - 1)
        inside = self.items[pos] == candidates
        weights = self.weights[:, pos[inside]]  # one copy per candidate set, not per block

        def score(users: np.ndarray) -> np.ndarray:
            inner = np.asarray(self.x[users] @ weights, dtype=np.float32)
            out = np.empty((users.size, candidates.size), dtype=np.float32)
            out[:, inside] = inner
            floor = inner.min(initial=0.0) - 1.0
            out[:, ~inside] = floor
            return out

        return score


def _columns(train: Interactions, n_items: int, max_items: int) -> tuple[np.ndarray, str]:
    counts = np.bincount(train.items, minlength=n_items)
    seen = np.flatnonzero(counts)
    note = ""
    if seen.size > max_items:
        top = seen[np.argsort(-counts[seen], kind="stable")[:max_items]]
        share = counts[top].sum() / counts.sum()
        note = (
            f"EASE needs a dense {seen.size:,} x {seen.size:,} inverse, over the {max_items:,}-"
            f"movie limit (about {3 * 8 * max_items**2 / 1e9:.1f} GB): fitted on the "
            f"{max_items:,} most-rated movies ({share:.1%} of train interactions); every other "
            "movie ranks below them, tied"
        )
        seen = np.sort(top)
    return seen, note


def fit(
    train: Interactions,
    n_users: int,
    n_items: int,
    *,
    lambdas: tuple[float, ...] = LAMBDAS,
    max_items: int = 16_000,
    holdout: float = 0.1,
    seed: int = 0,
) -> Ease:
    """Choose lambda on a held-out slice of train, then fit on all of train."""
    items, note = _columns(train, n_items, max_items)
    columns = np.full(n_items, -1, dtype=np.int64)
    columns[items] = np.arange(items.size)
    rng = np.random.default_rng(seed)
    held = rng.random(train.users.size) < holdout
    fit_part = Interactions(train.users[~held], train.items[~held], train.labels[~held])
    slice_part = Interactions(train.users[held], train.items[held], train.labels[held])
    x_fit = _matrix(fit_part, n_users, columns)
    selection = {}
    for lam in lambdas:
        model = Ease(items, fit_weights(x_fit, lam), x_fit, lam)
        acc = retrieval_accumulate(model.score_fn(items), items, fit_part, slice_part, ks=(10,))
        selection[str(lam)] = acc.result()["recall@10"]
    best = max(lambdas, key=lambda lam: selection[str(lam)])
    x = _matrix(train, n_users, columns)
    return Ease(items, fit_weights(x, best), x, best, note, selection)


def accumulators(
    model: Ease, variants: dict[str, np.ndarray], train: Interactions, valid: Interactions
) -> dict[str, RetrievalAccumulator]:
    """The retrieval loop over each candidate set (all movies, cold movies)."""
    return {
        name: retrieval_accumulate(model.score_fn(cands), cands, train, valid)
        for name, cands in variants.items()
    }
