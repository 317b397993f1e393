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
    def rank(a: float) -> dict:
        out = {"all": {"auc": a, "logloss": 0.5}}
        if cold:
            out |= {
                "warm": {"auc": a + 0.01, "logloss": 0.5},
                "cold": {"auc": a - 0.1, "logloss": 0.6},
            }
        return out

    runs = {}
    for mods, control, a in (
        ([], "none", 0.7),
        (["text", "image"], "none", 0.8),
        (["text", "image"], "constant", 0.72),
        (["text", "image"], "shuffled", 0.69),
    ):
        name = f"r.dlrm.{'+'.join(mods) or 'none'}.{control}"
        runs[name] = {"model": "dlrm", "modalities": mods, "control": control,
                      "metrics": {"ranking": rank(a)}}  # fmt: skip
    retr = {"all": {"recall@10": 0.1, "recall@50": 0.2, "ndcg@10": 0.1, "mrr": 0.2}}
    return {
        "dataset": "x",
        "etl_run": "r",
        "split": "cold-items" if cold else "random",
        "cold_items": cold,
        "baselines": {
            "ranking": {"user_movie_rate": rank(0.75)},
            "retrieval": {"popularity": retr},
        },
        "runs": runs,
    }


def test_report_tables_gains_and_plots(tmp_path: Path) -> None:
    from models.report import report

    root = tmp_path / "x"
    (root / "evaluation").mkdir(parents=True)
    (root / "evaluation" / "r.json").write_text(json.dumps(_doc(cold=5)))
    (root / "runs" / "r.dlrm.none.none").mkdir(parents=True)
    (root / "runs" / "r.dlrm.none.none" / "history.json").write_text(
        json.dumps({"loss": [0.7, 0.6], "val_auc": [0.65, 0.7]})
    )
    out = report(ReportConfig(dataset="x", data_dir=tmp_path))
    text = Path(out["markdown"]).read_text()
    # the gain row for cold items: 0.7 vs ids only 0.6 -> +0.1; vs constant 0.62; vs shuffled 0.59
    assert "| cold | text+image | 0.7000 | 0.1000 | 0.0800 | 0.1100 |" in text
    assert "No two-tower runs evaluated." in text
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in out["plots"])
    again = report(ReportConfig(dataset="x", data_dir=tmp_path))
    assert again.get("skipped") is True


def test_report_without_evaluation_says_what_to_run(tmp_path: Path) -> None:
    from models.report import report

    with pytest.raises(MmrecError, match="mmrec evaluate"):
        report(ReportConfig(dataset="x", data_dir=tmp_path))
