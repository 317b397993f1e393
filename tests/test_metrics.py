"""Metrics against brute force and hand-computed values (no sklearn)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from models.metrics import auc, logloss, retrieval_metrics


def brute_force_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 12, 200).astype(float)  # many ties on purpose
    assert auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores), abs=1e-12)


def test_auc_hand_values() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert auc([1, 1, 0], [0.9, 0.8, 0.1]) == pytest.approx(1.0)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_logloss_hand_value() -> None:
    expected = -(math.log(0.8) + math.log(1 - 0.4)) / 2
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(expected)
    assert math.isfinite(logloss([1, 0], [0.0, 1.0]))  # clipped, not infinite


def test_retrieval_metrics_hand_computed() -> None:
    # user 0: items ranked 3 > 1 > 0 > 4 > 2 ; relevant {1, 2}; item 3 excluded (seen in train)
    # -> ranking after exclusion: 1, 0, 4, 2
    # user 1: ranked 0 > 1 > 2 > 3 > 4 ; relevant {4}
    scores = np.array(
        [[0.5, 0.8, 0.1, 0.9, 0.3], [0.9, 0.8, 0.7, 0.6, 0.5]],
    )
    relevant = [np.array([1, 2]), np.array([4])]
    exclude = [np.array([3]), np.array([], dtype=int)]
    m = retrieval_metrics(scores, relevant, exclude, ks=(2, 4), ndcg_ks=(2,))
    # recall@2: user0 1/2, user1 0 -> 0.25 ; recall@4: user0 2/2, user1 0 (rank 5) -> 0.5
    assert m["recall@2"] == pytest.approx(0.25)
    assert m["recall@4"] == pytest.approx(0.5)
    # ndcg@2 user0: hit at rank1 -> 1 / (1 + 1/log2(3)); user1: 0
    assert m["ndcg@2"] == pytest.approx((1 / (1 + 1 / math.log2(3))) / 2)
    # MRR: user0 first relevant at rank 1; user1 at rank 5
    assert m["mrr"] == pytest.approx((1 + 1 / 5) / 2)
    assert m["users"] == 2


def test_users_without_relevant_items_are_skipped() -> None:
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = retrieval_metrics(scores, [np.array([0]), np.array([], dtype=int)], ks=(1,), ndcg_ks=(1,))
    assert m["users"] == 1
    assert m["recall@1"] == 1.0


def test_mrr_ties_take_the_expected_position() -> None:
    # a constant scorer over 5 items: the one relevant item is at position 3 on average
    m = retrieval_metrics(np.zeros((1, 5)), [np.array([4])], None, ks=(2,), ndcg_ks=(2,))
    assert m["mrr"] == pytest.approx(1 / 3)
    # two relevant among 4 tied items behind one better item: first hit expected at 1 + 5/3
    scores = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]])
    m = retrieval_metrics(scores, [np.array([1, 2])], None, ks=(2,), ndcg_ks=(2,))
    assert m["mrr"] == pytest.approx(1 / (1 + 5 / 3))
