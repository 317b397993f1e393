"""Training, evaluation and report end to end on a tiny dataset through the real ETL stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import make_train_tiny

from mmrec.config import EvaluateConfig, ReportConfig, TrainConfig
from mmrec.errors import MmrecError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_train_tiny(tmp_path_factory.mktemp("train"))


def tcfg(data_dir: Path, **kw) -> TrainConfig:
    kw.setdefault("etl_run", "cold-items-lookup")
    kw.setdefault("epochs", 2)
    kw.setdefault("batch_size", 256)
    return TrainConfig(dataset="tiny", data_dir=data_dir, **kw)


def test_train_evaluate_report_end_to_end(tiny: Path) -> None:
    from models.evaluate import evaluate
    from models.report import report
    from models.train import train

    dlrm = train(tcfg(tiny, model="dlrm", modalities=("text",)))
    tt = train(tcfg(tiny, model="two-tower", modalities=("text", "image")))
    run_dir = Path(dlrm["path"])
    for name in (
        "model",
        "checkpoints",
        "tensorboard",
        "history.json",
        "metrics.json",
        "config.json",
    ):
        assert (run_dir / name).exists(), name
    assert (Path(tt["path"]) / "query_tower").is_dir()
    ranking = dlrm["metrics"]["ranking"]
    assert set(ranking) == {"all", "warm", "cold"}
    assert ranking["cold"]["rows"] > 0 and 0.0 <= ranking["cold"]["auc"] <= 1.0
    assert ranking["all"]["rows"] == ranking["warm"]["rows"] + ranking["cold"]["rows"]
    retrieval = tt["metrics"]["retrieval"]
    assert {"all", "cold", "all_uncorrected"} <= set(retrieval)
    assert retrieval["all"]["users"] > 0
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["val_auc"]) == dlrm["epochs_run"]
    # Platt scaling on the train rows held out of fitting, recorded and inside the SavedModel
    calibration = json.loads((run_dir / "calibration.json").read_text())
    assert calibration == dlrm["calibration"] and calibration["scale"] > 0
    import pyarrow.parquet as pq

    from models.calibration import held_out

    files = sorted((tiny / "tiny" / "etl" / "cold-items-lookup" / "train").glob("*.parquet"))
    train_rows = pq.ParquetDataset([str(f) for f in files]).read(columns=["userId", "movieId"])
    users, items = train_rows["userId"].to_numpy(), train_rows["movieId"].to_numpy()
    assert calibration["rows"] == int(held_out(users, items, 0.05, 42).sum()) > 0
    assert calibration["logloss_after"] <= calibration["logloss_before"]

    assert train(tcfg(tiny, model="dlrm", modalities=("text",)))["skipped"] is True
    # other parameters under the same (default) run name: an error naming them, not the old run
    with pytest.raises(MmrecError, match=r"learning_rate: None -> 0\.01"):
        train(tcfg(tiny, model="dlrm", modalities=("text",), learning_rate=0.01))

    ev = evaluate(EvaluateConfig(dataset="tiny", data_dir=tiny, etl_run="cold-items-lookup"))
    doc = json.loads(Path(ev["evaluations"]["cold-items-lookup"]).read_text())
    reloaded = doc["runs"][dlrm["run"]]["metrics"]["ranking"]
    for group in ("all", "warm", "cold"):  # the saved model scores exactly like the trained one
        assert reloaded[group]["auc"] == pytest.approx(ranking[group]["auc"], abs=1e-9)
        assert reloaded[group]["logloss"] == pytest.approx(ranking[group]["logloss"], abs=1e-6)
    tt_reloaded = doc["runs"][tt["run"]]["metrics"]["retrieval"]["all"]
    assert tt_reloaded["recall@10"] == pytest.approx(retrieval["all"]["recall@10"], abs=1e-9)
    # per-run scores are cached beside the evaluation, never inside the published run folder
    cache = tiny / "tiny" / "evaluation" / "runs" / f"{dlrm['run']}.json"
    assert cache.is_file() and not (run_dir / "evaluation.json").exists()
    stamp = cache.stat().st_mtime_ns
    evaluate(EvaluateConfig(dataset="tiny", data_dir=tiny, etl_run="cold-items-lookup"))
    assert cache.stat().st_mtime_ns == stamp  # same run: read back, not scored again
    base = doc["baselines"]
    assert {"user_rate", "movie_rate", "user_movie_rate", "lightgbm"} <= set(base["ranking"])
    assert {"lightgbm+text+image", "text knn", "image knn"} <= set(base["ranking"])
    assert {"popularity", "random", "ease", "text knn"} <= set(base["retrieval"])
    # every metric has an interval around its value, baselines and runs alike
    for group in (reloaded["cold"], base["ranking"]["lightgbm"]["all"], tt_reloaded):
        for metric, (lo, hi) in group["ci"].items():
            assert lo <= group[metric] <= hi, metric
    assert doc["bootstrap"]["samples"] == 1000 and doc["bootstrap"]["unit"] == "user"
    key = "dlrm.text.none"
    assert doc["configurations"][key]["runs"] == [dlrm["run"]]
    assert doc["versus_baselines"]["ranking"][0]["versus"] == "baseline lightgbm"
    # evaluation lives outside the published run folders, and a rerun reuses its cache
    assert not (run_dir / "evaluation.json").exists()
    cache = tiny / "tiny" / "evaluation" / "runs"
    assert (cache / f"{dlrm['run']}.npz").exists()
    assert (tiny / "tiny" / "evaluation" / "baselines" / "cold-items-lookup.npz").exists()
    stamp = (cache / f"{dlrm['run']}.npz").stat().st_mtime_ns
    again = evaluate(EvaluateConfig(dataset="tiny", data_dir=tiny, etl_run="cold-items-lookup"))
    assert (cache / f"{dlrm['run']}.npz").stat().st_mtime_ns == stamp
    assert json.loads(Path(again["evaluations"]["cold-items-lookup"]).read_text()) == doc

    rep = report(ReportConfig(dataset="tiny", data_dir=tiny))
    text = Path(rep["markdown"]).read_text()
    assert "baseline: user_movie_rate" in text and "text+image" in text
    assert "What content is worth" in text and "baseline lightgbm" in text
    assert len(rep["plots"]) == 4
    for png in rep["plots"]:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report(ReportConfig(dataset="tiny", data_dir=tiny)).get("skipped") is True


def test_saved_dlrm_reloads_and_predicts_identically(tiny: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    from models.dlrm import build_dlrm
    from models.inputs import feature_schema, gather_tables, load_etl, make_loader

    run = load_etl(tiny / "tiny" / "etl" / "cold-items-lookup")
    schema = feature_schema(run, ("text", "image"))
    tables = gather_tables(run, ("text", "image"), "none", 0)
    loader = make_loader(run.train_dir, schema, tables, 256, shuffle=True)
    model = build_dlrm(
        schema, embedding_dim=8, top_mlp=(8,), dropout=0.1, l2_reg=1e-4, bias_l2_reg=1e-5
    )
    model.compile(optimizer="adam")
    model.fit(loader, epochs=1, verbose=0)
    x, _ = next(iter(make_loader(run.valid_dir, schema, tables, 512, shuffle=False)))
    before = np.asarray(model(x, training=False))
    model.save(str(tmp_path / "saved"))
    again = tf.keras.models.load_model(str(tmp_path / "saved"))
    np.testing.assert_allclose(np.asarray(again(x, training=False)), before, rtol=0, atol=1e-6)


def test_controls_change_exactly_the_vectors(tiny: Path) -> None:
    from models.inputs import ITEM, feature_schema, gather_tables, load_etl, make_loader

    run = load_etl(tiny / "tiny" / "etl" / "cold-items-lookup")
    real = run.matrices["text"]
    has = run.has["text"]
    const = gather_tables(run, ("text",), "constant", 0)["text_embedding"]
    assert np.all(const == const[0])  # every row identical
    assert np.allclose(const[0], real[has].mean(0), atol=1e-6)
    shuf = gather_tables(run, ("text",), "shuffled", 0)["text_embedding"]
    rows = np.flatnonzero(has)
    assert not np.array_equal(shuf[rows], real[rows])
    key = lambda a: np.lexsort(a.T)  # noqa: E731
    np.testing.assert_array_equal(shuf[rows][key(shuf[rows])], real[rows][key(real[rows])])
    np.testing.assert_array_equal(shuf[~has], real[~has])  # movies without text keep zeros

    schema = feature_schema(run, ("text",))
    for table in (const, shuf):
        tables = {"text_embedding": table}
        x, _ = next(iter(make_loader(run.valid_dir, schema, tables, 64, shuffle=False)))
        ids = np.asarray(x[ITEM]).reshape(-1)
        np.testing.assert_array_equal(np.asarray(x["text_embedding"]), table[ids])


def test_join_and_lookup_runs_feed_the_same_vectors(tiny: Path) -> None:
    from models.inputs import feature_schema, gather_tables, load_etl, make_loader

    batches = {}
    for mode in ("lookup", "join"):
        run = load_etl(tiny / "tiny" / "etl" / f"cold-items-{mode}")
        assert run.mode == mode
        schema = feature_schema(run, ("text", "image"))
        tables = gather_tables(run, ("text", "image"), "none", 0)
        x, y = next(iter(make_loader(run.valid_dir, schema, tables, 10_000, shuffle=False)))
        batches[mode] = (x, y)
    for col in ("movieId", "userId", "text_embedding", "image_embedding"):
        np.testing.assert_allclose(
            np.asarray(batches["join"][0][col]), np.asarray(batches["lookup"][0][col]), atol=1e-7
        )


def test_bad_requests_fail_with_a_reason(tiny: Path) -> None:
    from models.inputs import parse_modalities
    from models.train import train

    with pytest.raises(MmrecError, match="unknown modality 'audio'"):
        parse_modalities("text,audio")
    with pytest.raises(MmrecError, match="give --modalities"):
        train(tcfg(tiny, control="shuffled"))
    with pytest.raises(MmrecError, match="several ETL runs"):
        train(tcfg(tiny, etl_run=None))
    with pytest.raises(MmrecError, match="does not exist"):
        train(tcfg(tiny, etl_run="nope"))
    with pytest.raises(MmrecError, match="unknown model"):
        train(tcfg(tiny, model="mf"))


def test_early_stopping_reads_a_fixed_sample_of_many_valid_rows(tiny: Path) -> None:
    """--valid-sample-rows: Keras validates on a hashed sample, the published metrics on all."""
    from models.inputs import feature_schema, load_etl, make_loader
    from models.train import train

    run = load_etl(tiny / "tiny" / "etl" / "cold-items-lookup")
    total = run.summary["rows"]["valid"]
    schema = feature_schema(run, ())
    sample = (200 / total, 42)
    rows = [
        sum(int(np.asarray(y).size) for _x, y in make_loader(
            run.valid_dir, schema, {}, 64, shuffle=False, holdout=sample, held_out_rows=inside
        ))
        for inside in (True, False)
    ]  # fmt: skip
    assert sum(rows) == total and 100 < rows[0] < 300  # a sample near 200 and its complement

    s = train(tcfg(tiny, run_name="sampled", valid_sample_rows=200, calibration_fraction=0.0))
    assert s["validation_sample"] == {"fraction": pytest.approx(200 / total), "of_rows": total}
    assert s["metrics"]["ranking"]["all"]["rows"] == total
    assert "calibration" not in s and not (Path(s["path"]) / "calibration.json").exists()
    everything = train(tcfg(tiny, run_name="every-row", valid_sample_rows=0))
    assert "validation_sample" not in everything
