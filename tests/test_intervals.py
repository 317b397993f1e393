"""Bootstrap intervals over users: exact on fixed weights, and covering the truth in simulation."""

from __future__ import annotations

from math import erf, sqrt

import numpy as np
import pytest

from models.intervals import (
    UserDraws,
    gain,
    interval,
    per_user_draws,
    ranking_draws,
    verdict,
)
from models.metrics import auc, logloss


def test_each_draw_is_the_metric_on_the_resampled_rows() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 400)
    labels = rng.integers(0, 2, 400)
    probs = np.round(rng.uniform(size=400), 1)  # ties on purpose
    draws = UserDraws(users, samples=5, seed=1)
    got = ranking_draws(draws, users, labels, probs)
    for b in range(5):
        # expand the rows: each row repeated as often as its user was drawn
        reps = draws.counts[b][draws.index(users)]
        y, p = np.repeat(labels, reps), np.repeat(probs, reps)
        assert got["auc"][b] == pytest.approx(auc(y, p), abs=1e-12)
        assert got["logloss"][b] == pytest.approx(logloss(y, p), abs=1e-12)


def test_draws_are_seeded_and_shared_by_user_id() -> None:
    a = UserDraws(np.array([5, 3, 9, 3]), samples=4, seed=7)
    b = UserDraws(np.array([9, 5, 3]), samples=4, seed=7)
    assert np.array_equal(a.counts, b.counts)
    assert np.array_equal(a.counts.sum(axis=1), np.full(4, 3))
    with pytest.raises(ValueError, match="not among"):
        a.index(np.array([4]))


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + erf(x / sqrt(2)))


def test_auc_interval_covers_the_true_value_about_95_percent() -> None:
    # scores ~ N(delta * label, 1) plus a per-user offset shared by the user's rows, so rows are
    # clustered by user as in a real split; the population AUC is estimated on a huge sample
    rng = np.random.default_rng(42)
    delta = 0.8

    def split(n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        per_user = rng.integers(5, 30, n_users)
        users = np.repeat(np.arange(n_users), per_user)
        labels = rng.integers(0, 2, users.size)
        offset = rng.normal(0, 0.7, n_users)[users]
        return users, labels, delta * labels + offset + rng.normal(size=users.size)

    _, big_y, big_s = split(40_000)
    truth = auc(big_y, big_s)
    assert truth == pytest.approx(_normal_cdf(delta / sqrt(2 * (1 + 0.49))), abs=0.01)
    covered = 0
    reps = 120
    for rep in range(reps):
        users, labels, scores = split(120)
        draws = UserDraws(users, samples=200, seed=rep)
        iv = interval(auc(labels, scores), ranking_draws(draws, users, labels, scores)["auc"])
        covered += iv.lo <= truth <= iv.hi
    assert 0.88 <= covered / reps <= 0.995, covered


def test_paired_gain_interval_covers_the_true_gain_and_is_tighter_than_unpaired() -> None:
    # per-user recall of two scorers: B = A + 0.02 on average, both sharing the user's
    # difficulty, so the paired difference is far less noisy than either value
    rng = np.random.default_rng(1)
    true_gain = 0.02
    covered = 0
    widths_paired, widths_single = [], []
    reps = 100
    for rep in range(reps):
        n = 300
        difficulty = rng.uniform(0, 1, n)
        a = np.clip(difficulty + rng.normal(0, 0.05, n), 0, 1)
        b = np.clip(a + true_gain + rng.normal(0, 0.05, n), -1, 2)
        users = rng.permutation(n) + 1000
        draws = UserDraws(users, samples=300, seed=rep)
        da = per_user_draws(draws, users, {"r": a})["r"]
        db = per_user_draws(draws, users, {"r": b})["r"]
        g = gain([b.mean()], [db], [a.mean()], [da])
        covered += g.lo <= true_gain <= g.hi
        widths_paired.append(g.hi - g.lo)
        single = interval(b.mean(), db)
        widths_single.append(single.hi - single.lo)
    assert 0.87 <= covered / reps <= 1.0, covered
    assert np.mean(widths_paired) < 0.5 * np.mean(widths_single)


def test_gain_of_seed_means_and_verdicts() -> None:
    draws_a = [np.array([0.5, 0.6, 0.7]), np.array([0.7, 0.8, 0.9])]  # two seeds of A
    draws_b = [np.array([0.4, 0.4, 0.4])]
    g = gain([0.6, 0.8], draws_a, [0.4], draws_b)
    assert g.value == pytest.approx(0.3)
    assert g.lo == pytest.approx(np.percentile([0.2, 0.3, 0.4], 2.5))
    assert verdict(g) == "helps"
    assert verdict(interval(0.0, np.array([-0.1, 0.1]))) == "no evidence"
    assert verdict(interval(-0.2, np.array([-0.3, -0.1]))) == "hurts"
    # lower is better (logloss): a negative change helps
    assert verdict(interval(-0.2, np.array([-0.3, -0.1])), higher_is_better=False) == "helps"
