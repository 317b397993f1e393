"""Baselines, the retrieval loop and the report on hand-made inputs (no TensorFlow needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmrec.config import ReportConfig
from mmrec.errors import MmrecError
from models.baselines import popularity_scores, ranking_baselines, smoothed_rate
from models.data import Interactions
from models.scoring import ranking_metrics, retrieval_eval


def test_smoothed_rate_hand_values() -> None:
    keys = np.array([0, 0, 0, 1])
    labels = np.array([1, 1, 0, 0])
    rate = smoothed_rate(keys, labels, size=3, prior=0.5, strength=2.0)
    # key 0: (2 + 1) / (3 + 2); key 1: (0 + 1) / (1 + 2); key 2 (unseen): the prior
    np.testing.assert_allclose(rate, [3 / 5, 1 / 3, 0.5])


def test_combined_baseline_is_user_plus_movie_in_logit_space() -> None:
    train = Interactions(np.array([3, 3, 4, 4]), np.array([5, 6, 5, 6]), np.array([1, 1, 0, 1]))
    valid = Interactions(np.array([3, 4]), np.array([7, 5]), np.array([1, 0]))
    b = ranking_baselines(train, valid, strength=1.0)
    prior = 0.75
    user3 = (2 + prior) / (2 + 1)
    movie7 = prior  # cold movie: no train rows
    assert b["user_rate"][0] == pytest.approx(user3)
    assert b["movie_rate"][0] == pytest.approx(movie7)
    assert b["user_movie_rate"][0] == pytest.approx(user3)  # movie term cancels the prior


def test_ranking_metrics_split_cold_and_warm() -> None:
    labels = np.array([1, 0, 1, 0])
    probs = np.array([0.9, 0.1, 0.2, 0.8])
    items = np.array([10, 10, 11, 11])
    m = ranking_metrics(labels, probs, items, cold_ids=np.array([11]))
    assert m["warm"]["auc"] == 1.0 and m["cold"]["auc"] == 0.0
    assert m["all"]["rows"] == 4 and m["cold"]["rows"] == 2


def test_retrieval_eval_excludes_train_and_ranks_all_candidates() -> None:
    # user 3 rated item 5 in train (excluded); valid positive: item 7; score = item id
    train = Interactions(np.array([3]), np.array([8]), np.array([1]))
    valid = Interactions(np.array([3, 3]), np.array([7, 6]), np.array([1, 0]))
    candidates = np.array([4, 5, 6, 7, 8])
    m = retrieval_eval(
        lambda users: np.tile(candidates.astype(float), (users.size, 1)),
        candidates,
        train,
        valid,
        ks=(1, 2),
        ndcg_ks=(1,),
    )
    # ranking without item 8 (train): 7, 6, 5, 4 -> item 7 is first
    assert m["recall@1"] == 1.0 and m["mrr"] == 1.0 and m["users"] == 1
    assert popularity_scores(train, 10)[8] == 1.0


def _doc(cold: int) -> dict:
    """An evaluation document built by the real interval code from planted scores.

    Content beats ids only clearly on cold rows; the constant control scores exactly like the
    content run (a gain of zero); the shuffled control like ids only.
    """
    from models.comparisons import Bootstrapper, Scored
    from models.evaluate import _intervals

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(200), 10)
    items = rng.integers(3, 30, users.size)
    labels = rng.integers(0, 2, users.size).astype(np.int8)
    valid = Interactions(users, items, labels)
    cold_ids = np.arange(3, 3 + cold)
    noise = rng.normal(size=users.size)

    def probs(signal: float) -> np.ndarray:
        return 1 / (1 + np.exp(-(signal * (labels - 0.5) + noise)))

    is_cold = np.isin(items, cold_ids)
    ids_only = probs(0.5)
    content = np.where(is_cold, probs(2.0), ids_only)
    scores = {
        ("dlrm", (), "none"): ids_only,
        ("dlrm", ("text", "image"), "none"): content,
        ("dlrm", ("text", "image"), "constant"): content,
        ("dlrm", ("text", "image"), "shuffled"): ids_only,
    }
    results, run_scores = {}, {}
    for (model, mods, control), p in scores.items():
        name = f"r.{model}.{'+'.join(mods) or 'none'}.{control}"
        results[name] = {
            "model": model,
            "modalities": list(mods),
            "control": control,
            "seed": 42,
            "metrics": {"ranking": ranking_metrics(labels, p, items, cold_ids)},
        }
        run_scores[name] = Scored(ranking=p)
    base = {"user_movie_rate": Scored(ranking=probs(0.2)), "lightgbm": Scored(ranking=probs(1.0))}
    doc = {
        "dataset": "x",
        "etl_run": "r",
        "split": "cold-items" if cold else "random",
        "cold_items": cold,
        "baselines": {
            "ranking": {
                k: ranking_metrics(labels, v.ranking, items, cold_ids) for k, v in base.items()
            },
            "retrieval": {},
        },
        "runs": results,
    }
    boot = Bootstrapper(valid, cold_ids, samples=200, seed=0)
    _intervals(doc, results, run_scores, {"ranking": base, "retrieval": {}}, boot)
    return doc


def test_report_opens_with_gains_intervals_and_verdicts(tmp_path: Path) -> None:
    from models.report import report

    root = tmp_path / "x"
    (root / "evaluation").mkdir(parents=True)
    doc = _doc(cold=5)
    (root / "evaluation" / "r.json").write_text(json.dumps(doc))
    (root / "runs" / "r.dlrm.none.none").mkdir(parents=True)
    (root / "runs" / "r.dlrm.none.none" / "history.json").write_text(
        json.dumps({"loss": [0.7, 0.6], "val_auc": [0.65, 0.7]})
    )
    gains = {r["versus"]: r["gains"] for r in doc["ablation"]["ranking"]}
    assert gains["ids only"]["cold"]["auc"]["verdict"] == "helps"
    assert gains["ids only"]["warm"]["auc"]["gain"] == 0.0
    assert gains["constant control"]["cold"]["auc"]["verdict"] == "no evidence"
    assert gains["shuffled control"]["cold"]["auc"]["verdict"] == "helps"
    lgb = doc["versus_baselines"]["ranking"]
    assert {tuple(r["modalities"]) for r in lgb} == {(), ("text", "image")}
    out = report(ReportConfig(dataset="x", data_dir=tmp_path))
    text = Path(out["markdown"]).read_text()
    first = text.index("### What content is worth")
    assert first < text.index("### dlrm (ranking) and baselines")
    row = next(line for line in text.splitlines() if "| text+image | ids only |" in line)
    cold_gain = gains["ids only"]["cold"]["auc"]
    assert f"{cold_gain['gain']:+.4f} [{cold_gain['ci'][0]:+.4f}" in row
    assert row.rstrip(" |").endswith("**helps**")
    assert "**no evidence**" in text and "baseline lightgbm" in text
    assert "No two-tower runs evaluated." in text
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in out["plots"])
    again = report(ReportConfig(dataset="x", data_dir=tmp_path))
    assert again.get("skipped") is True


def test_report_without_evaluation_says_what_to_run(tmp_path: Path) -> None:
    from models.report import report

    with pytest.raises(MmrecError, match="mmrec evaluate"):
        report(ReportConfig(dataset="x", data_dir=tmp_path))
