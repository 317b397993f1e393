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


def test_mrr_is_the_expected_reciprocal_rank_under_random_tie_order() -> None:
    # a constant scorer over 5 items, one relevant: its rank is uniform on 1..5, so
    # E[1/rank] = (1 + 1/2 + 1/3 + 1/4 + 1/5) / 5 (not 1 / E[rank] = 1/3)
    m = retrieval_metrics(np.zeros((1, 5)), [np.array([4])], None, ks=(2,), ndcg_ks=(2,))
    assert m["mrr"] == pytest.approx(sum(1 / r for r in range(1, 6)) / 5)
    # one better item, then 4 tied items of which 2 relevant: the first relevant one is at tied
    # position 1, 2, 3 with probability 3/6, 2/6, 1/6, i.e. at overall rank 2, 3, 4
    scores = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]])
    m = retrieval_metrics(scores, [np.array([1, 2])], None, ks=(2,), ndcg_ks=(2,))
    assert m["mrr"] == pytest.approx(3 / 6 / 2 + 2 / 6 / 3 + 1 / 6 / 4)


def _brute_force(scores, relevant, exclude, k):
    """recall@k, ndcg@k and RR averaged over every order of the items (ties broken by it)."""
    n = scores.shape[0]
    keep = np.setdiff1d(np.arange(n), exclude)
    totals = np.zeros(3)
    perms = list(itertools.permutations(range(n)))
    for perm in perms:
        tiebreak = np.empty(n)
        tiebreak[list(perm)] = np.arange(n)
        order = sorted(keep, key=lambda i: (-scores[i], tiebreak[i]))
        hits = np.isin(order, relevant).astype(float)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        totals += [
            hits[:k].sum() / len(relevant),
            sum(h / math.log2(r + 2) for r, h in enumerate(hits[:k])) / ideal,
            1 / (np.argmax(hits) + 1),
        ]
    return totals / len(perms)


@pytest.mark.parametrize("seed", range(20))
def test_tie_aware_metrics_equal_the_mean_over_all_tie_orders(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 6
    scores = rng.integers(0, 3, n).astype(float)  # heavy ties, at and above the cut
    relevant = np.sort(rng.choice(n, rng.integers(1, 4), replace=False))
    others = np.setdiff1d(np.arange(n), relevant)
    exclude = rng.choice(others, rng.integers(0, 2), replace=False)
    k = int(rng.integers(1, 5))
    m = retrieval_metrics(scores[None, :], [relevant], [exclude], ks=(k,), ndcg_ks=(k,))
    recall, ndcg, rr = _brute_force(scores, relevant, exclude, k)
    assert m[f"recall@{k}"] == pytest.approx(recall, abs=1e-12)
    assert m[f"ndcg@{k}"] == pytest.approx(ndcg, abs=1e-12)
    assert m["mrr"] == pytest.approx(rr, abs=1e-12)


def test_a_constant_scorer_scores_what_random_ranking_scores() -> None:
    # 100 candidates, 3 relevant, 10 excluded: random order puts 10 of the 90 in the top 10
    scores = np.zeros((1, 100))
    relevant = [np.array([0, 1, 2])]
    exclude = [np.arange(90, 100)]
    m = retrieval_metrics(scores, relevant, exclude, ks=(10,), ndcg_ks=(10,))
    assert m["recall@10"] == pytest.approx(10 / 90)
    # storing the relevant items first or last must not matter
    m_last = retrieval_metrics(scores, [np.array([87, 88, 89])], exclude, ks=(10,), ndcg_ks=(10,))
    assert m_last["recall@10"] == pytest.approx(m["recall@10"])
    assert m_last["ndcg@10"] == pytest.approx(m["ndcg@10"])


def test_float32_scores_give_the_float64_results() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(20, 300)).astype(np.float32)
    relevant = [rng.choice(300, 4, replace=False) for _ in range(20)]
    a = retrieval_metrics(scores, relevant)
    b = retrieval_metrics(scores.astype(np.float64), relevant)
    assert a == b
