"""`mmrec evaluate`: score saved runs on their validation split, beside baselines on that split.

Each run is reloaded from its SavedModel (so what is scored is what was saved), fed the same
inputs it was trained on (same modalities, same control, same seed), and scored with the shared
loops in models.scoring. Baselines are computed once per ETL run. Per-run results are cached in
`<root>/evaluation/runs/<run>.json` (outside the run folder, which train published whole), keyed
by the digest of the run's summary.json; everything goes to `<root>/evaluation/<etl-run>.json`
for `mmrec report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mmrec.config import EvaluateConfig
from mmrec.contracts import DatasetPaths, TrainRunPaths
from mmrec.done import check_done, digests, record_of
from mmrec.errors import MmrecError
from mmrec.io import read_json, write_json_atomic
from models.data import Interactions
from models.inputs import EtlRun, feature_schema, gather_tables, load_etl, make_loader


def finished_runs(runs_dir: Path, names: tuple[str, ...] = ()) -> list[Path]:
    """Run folders with a summary.json (finished training), all or the named ones."""
    if names:
        out = []
        for n in names:
            p = runs_dir / n
            if not TrainRunPaths(p).summary.exists():
                raise MmrecError(f"{p} is not a finished training run (no summary.json)")
            out.append(p)
        return out
    return sorted(p for p in runs_dir.glob("*") if TrainRunPaths(p).summary.exists())


def baselines_of(run: EtlRun, strength: float, interactions: Any) -> dict[str, Any]:
    """Ranking baselines (smoothed rates) and the popularity retrieval baseline.

    `interactions`: (train, valid) `models.data.Interactions` of `run`, read once by the caller.
    """
    from models.baselines import ranking_baselines
    from models.scoring import ranking_metrics
    from models.towers import RetrievalData, popularity_metrics

    train, valid = interactions
    probs = ranking_baselines(train, valid, strength)
    ranking = {
        name: ranking_metrics(valid.labels, p, valid.items, run.cold_item_ids)
        for name, p in probs.items()
    }
    data = RetrievalData(run, feature_schema(run, (), with_label=False), {}, interactions)
    return {"ranking": ranking, "retrieval": {"popularity": popularity_metrics(data)}}


def evaluate_run(run_dir: Path, etl: EtlRun, interactions: Any = None) -> dict[str, Any]:
    """Reload one run's saved model(s) and score it on the validation split.

    `interactions`: (train, valid) of `etl` if already read (two-tower runs need them).
    """
    import numpy as np
    import tensorflow as tf
    from merlin.schema import Tags

    import models.layers  # noqa: F401  (registers Standardize for load_model)
    from models.train import load_run_config

    config = load_run_config(run_dir)
    modalities = tuple(config["modalities"])
    schema = feature_schema(etl, modalities, with_label=True, continuous=config["model"] == "dlrm")
    tables = gather_tables(etl, modalities, config["control"], config["seed"])
    started = time.time()
    if config["model"] == "dlrm":
        from models.towers import ranking_metrics_of

        model = tf.keras.models.load_model(str(TrainRunPaths(run_dir).model))
        loader = make_loader(etl.valid_dir, schema, tables, 8192, shuffle=False)
        metrics: dict[str, Any] = {"ranking": ranking_metrics_of(model, loader, etl)}
    else:
        from models.towers import RetrievalData, retrieval_metrics_of

        query = tf.keras.models.load_model(str(TrainRunPaths(run_dir).query_tower))
        items = tf.keras.models.load_model(str(TrainRunPaths(run_dir).item_tower))
        data = RetrievalData(etl, schema.excluding_by_tag(Tags.TARGET), tables, interactions)
        saved_pop = TrainRunPaths(run_dir).item_log_popularity
        if saved_pop.exists():
            data.log_popularity = np.load(saved_pop)
        metrics = {
            "retrieval": retrieval_metrics_of(
                query,
                items,
                data,
                temperature=config["resolved"]["temperature"],
                popularity_correction=config["popularity_correction"],
            )
        }
    return {
        "run": run_dir.name,
        "model": config["model"],
        "modalities": list(modalities),
        "control": config["control"],
        "etl_run": config["etl_run"],
        "metrics": metrics,
        "seconds": round(time.time() - started, 2),
    }


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Evaluate finished runs (all, or those named) and the baselines of their ETL runs."""
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    run_dirs = finished_runs(paths.runs, cfg.runs)
    if not run_dirs:
        raise MmrecError(f"no finished training runs under {paths.runs}; run `mmrec train` first")
    by_etl: dict[str, list[Path]] = {}
    for d in run_dirs:
        etl_name = read_json(TrainRunPaths(d).summary)["etl_run"]
        if cfg.etl_run and etl_name != cfg.etl_run:
            continue
        by_etl.setdefault(etl_name, []).append(d)
    written = {}
    for etl_name, dirs in sorted(by_etl.items()):
        etl = load_etl(paths.etl / etl_name)
        interactions = (Interactions.read(etl.train_dir), Interactions.read(etl.valid_dir))
        results = {}
        for d in dirs:
            cache = paths.run_evaluation(d.name)
            made_from = digests([TrainRunPaths(d).summary])  # retrained: scored again
            cached = check_done(cache, {}, force=cfg.force, inputs=made_from)
            if cached is not None:
                results[d.name] = cached["result"]
                continue
            results[d.name] = evaluate_run(d, etl, interactions)
            write_json_atomic(cache, record_of({}, made_from, result=results[d.name]))
        doc = {
            "dataset": cfg.dataset,
            "etl_run": etl_name,
            "split": etl.summary.get("split", {}).get("kind"),
            "cold_items": int(etl.cold_item_ids.size),
            "baselines": baselines_of(etl, cfg.baseline_strength, interactions),
            "runs": results,
        }
        target = paths.evaluation_of(etl_name)
        write_json_atomic(target, doc)
        written[etl_name] = str(target)
    return {"dataset": cfg.dataset, "evaluations": written, "runs": sum(map(len, by_etl.values()))}
