"""EASE, LightGBM and content kNN on tiny data (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import ease
from models.content_knn import ContentKnn
from models.data import Interactions
from models.gbdt import ItemFeatures, fit_predict, out_of_fold_rates
from models.metrics import auc
from models.scoring import retrieval_accumulate


def _dense_reference(x: np.ndarray, lam: float) -> np.ndarray:
    """Each column j as a ridge regression of X_j on the other columns (diag(B) = 0)."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + lam * np.eye(n - 1), a.T @ x[:, j])
    return b


def test_ease_closed_form_equals_the_constrained_ridge_solution() -> None:
    from scipy import sparse

    rng = np.random.default_rng(0)
    x = (rng.random((40, 9)) < 0.3).astype(float)
    for lam in (0.5, 5.0, 50.0):
        got = ease.fit_weights(sparse.csr_matrix(x), lam)
        np.testing.assert_allclose(got, _dense_reference(x, lam), atol=1e-5)


def _split(n_users: int, n_items: int, seed: int) -> tuple[Interactions, Interactions]:
    """Two user groups, each liking its own parity of movie ids: half of them in train."""
    rng = np.random.default_rng(seed)
    parts: list[list[tuple[int, int]]] = [[], []]
    for u in range(n_users):
        mine = rng.permutation(np.arange(3 + u % 2, n_items, 2))
        half = mine.size // 2
        parts[0] += [(u, i) for i in mine[:half]]
        parts[1] += [(u, i) for i in mine[half:]]
    out = []
    for rows in parts:
        a = np.array(rows)
        out.append(Interactions(a[:, 0], a[:, 1], np.ones(len(a), np.int8)))
    return out[0], out[1]


def test_ease_learns_the_groups_and_chooses_lambda_on_train() -> None:
    train, valid = _split(60, 23, 0)
    model = ease.fit(train, n_users=60, n_items=23, lambdas=(1.0, 10.0), seed=0)
    assert set(model.selection) == {"1.0", "10.0"}
    assert model.lam in (1.0, 10.0)
    cands = np.arange(3, 23)
    scores = model.score_fn(cands)(np.array([0, 1]))
    same = (cands % 2) == 1
    # user 0 likes odd ids: its mean score on odd movies beats even ones; user 1 the reverse
    assert scores[0, same].mean() > scores[0, ~same].mean()
    assert scores[1, ~same].mean() > scores[1, same].mean()
    acc = retrieval_accumulate(model.score_fn(cands), cands, train, valid, ks=(5,), ndcg_ks=(5,))
    # 10 movies left per user, 5 relevant: random ranking's recall@5 is 0.5, EASE finds them all
    assert acc.result()["recall@5"] == pytest.approx(1.0)
    assert ease.accumulators(model, {"all": cands}, train, valid)["all"].users == 60


def test_ease_over_the_item_limit_fits_the_most_rated_and_says_so() -> None:
    train, _ = _split(60, 23, 0)
    model = ease.fit(train, n_users=60, n_items=23, lambdas=(10.0,), max_items=5)
    assert model.items.size == 5
    assert "5 most-rated" in model.note
    cands = np.arange(3, 23)
    scores = model.score_fn(cands)(np.array([0]))
    outside = ~np.isin(cands, model.items)
    assert np.unique(scores[0, outside]).size == 1  # tied, below every fitted movie
    assert scores[0, outside][0] < scores[0, ~outside].min()


def test_out_of_fold_rates_never_see_the_row_itself() -> None:
    # every user has one positive and one negative row: with its own label the user rate
    # would tell them apart; out of fold it cannot
    users = np.repeat(np.arange(200), 2)
    items = np.tile([3, 4], 200)
    labels = np.tile([1, 0], 200).astype(np.int8)
    rates = out_of_fold_rates(Interactions(users, items, labels), (200, 5), 5.0, 5, 0)
    assert auc(labels, rates[:, 0]) < 0.5  # leave-one-out-like rates anti-correlate


def test_lightgbm_beats_chance_on_a_planted_signal() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 60
    taste = rng.normal(size=n_users)
    quality = rng.normal(size=n_items)
    genre = rng.integers(3, 6, n_items)

    def sample(n: int, seed: int) -> Interactions:
        r = np.random.default_rng(seed)
        u = r.integers(0, n_users, n)
        i = r.integers(3, n_items, n)
        logit = taste[u] + quality[i] + (genre[i] == 3) * 1.5 * np.sign(taste[u])
        y = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        return Interactions(u, i, y)

    train, valid = sample(8_000, 1), sample(4_000, 2)
    table = pd.DataFrame(
        {
            "movieId": np.arange(3, n_items),
            "genres": [np.array([g]) for g in genre[3:]],
            "year": np.full(n_items - 3, 3),
        }
    )
    items = ItemFeatures.from_table(table, n_items)
    assert items.genres.shape == (n_items, 3) and items.genres[3:].sum() == n_items - 3
    probs, info = fit_predict(
        train, valid, items, sizes=(n_users, n_items), seed=0, max_rounds=150, threads=1
    )
    assert info["rounds"] >= 1
    assert probs.shape == (4_000,) and np.all((probs > 0) & (probs < 1))
    truth = taste[valid.users] + quality[valid.items]
    assert auc(valid.labels, probs) > 0.70
    assert auc(valid.labels, probs) > auc(valid.labels, truth) - 0.05


def test_content_knn_ranks_movies_like_the_liked_ones_first() -> None:
    # movies 3-5 point one way, 6-8 the other; user 0 liked 3, user 1 liked 6
    matrix = np.zeros((9, 2), np.float32)
    matrix[3:6] = [1.0, 0.1]
    matrix[6:9] = [0.1, 1.0]
    has = np.ones(9, bool)
    has[8] = False
    train = Interactions(np.array([0, 1, 1]), np.array([3, 6, 4]), np.array([1, 1, 0], np.int8))
    knn = ContentKnn(matrix, has, train, n_users=2)
    scores = knn.score_fn(np.arange(3, 9))(np.array([0, 1]))
    assert scores[0, :3].min() > scores[0, 3:5].max()
    assert scores[1, 3:5].min() > scores[1, :3].max()
    assert scores[1, 5] == 0.0  # movie 8 has no vector
    assert knn.rows(np.array([0]), np.array([4]))[0] == pytest.approx(scores[0, 1])
