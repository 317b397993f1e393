"""`mmrec evaluate`: score saved runs on their validation split, beside strong baselines on that split.

Each run is reloaded from its SavedModel (so what is scored is what was saved), fed the same
inputs it was trained on (same modalities, same control, same seed), and scored with the shared
loops in models.scoring. Baselines are scored once per ETL run through the same loops:
smoothed rates, LightGBM (models/gbdt.py) and content kNN for ranking; popularity, random, EASE
(models/ease.py) and content kNN for retrieval. Every metric then gets a paired bootstrap
interval over users, the seeds of each configuration are averaged, and every ablation gain gets
its interval and verdict (models/comparisons.py).

Outputs: `<root>/evaluation/<etl-run>.json` for `mmrec report`. Each run's metrics and scores
are cached in `<root>/evaluation/runs/<run>.json|.npz` (never inside the run folder, which train
published whole), keyed by the digest of the run's summary.json; the baselines' in
`<root>/evaluation/baselines/<etl-run>.json|.npz`, keyed by the ETL run's summary and the
baseline parameters (mmrec.done: other parameters are an error unless --force).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.config import EvaluateConfig
from mmrec.contracts import FIRST_ID, DatasetPaths, TrainRunPaths
from mmrec.done import check_done, digests, record_of
from mmrec.errors import MmrecError
from mmrec.io import read_json, write_bytes_atomic, write_json_atomic
from models.comparisons import (
    STRONGEST,
    Bootstrapper,
    Config,
    Scored,
    ablation,
    config_key,
    versus_baseline,
    with_ci,
)
from models.data import Interactions, item_table
from models.inputs import EtlRun, feature_schema, gather_tables, load_etl, make_loader
from models.metrics import RetrievalAccumulator
from models.scoring import ranking_metrics, retrieval_accumulate

CACHE_VERSION = 2  # bump when what a cached score means changes


def finished_runs(runs_dir: Path, names: tuple[str, ...] = ()) -> list[Path]:
    """Run folders with a summary.json (finished training), all or the named ones."""
    if names:
        out = []
        for n in names:
            p = runs_dir / n
            if not (p / "summary.json").exists():
                raise MmrecError(f"{p} is not a finished training run (no summary.json)")
            out.append(p)
        return out
    return sorted(p for p in runs_dir.glob("*") if TrainRunPaths(p).summary.exists())


def _save_scored(target: Path, scored: Scored) -> None:
    arrays: dict[str, np.ndarray] = {"probabilities": np.array(scored.probabilities)}
    if scored.ranking is not None:
        arrays["ranking"] = np.asarray(scored.ranking, dtype=np.float64)
    for key, v in scored.extra.items():
        arrays[f"extra/{key}"] = v
    for variant, (users, values) in scored.retrieval.items():
        arrays[f"retrieval/{variant}/users"] = users
        for metric, v in values.items():
            arrays[f"retrieval/{variant}/{metric}"] = v
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(target, buf.getvalue())


def _load_scored(source: Path) -> Scored:
    with np.load(source) as z:
        scored = Scored(
            ranking=z["ranking"] if "ranking" in z.files else None,
            probabilities=bool(z["probabilities"]),
        )
        for key in z.files:
            parts = key.split("/")
            if parts[0] == "extra":
                scored.extra[key.split("/", 1)[1]] = z[key]
            if parts[0] == "retrieval" and parts[2] == "users":
                variant = parts[1]
                values = {
                    k.split("/")[2]: z[k]
                    for k in z.files
                    if k.startswith(f"retrieval/{variant}/") and not k.endswith("/users")
                }
                scored.retrieval[variant] = (z[key], values)
    return scored


def _scored_retrieval(accs: dict[str, RetrievalAccumulator]) -> Scored:
    return Scored(
        retrieval={k: acc.per_user() for k, acc in accs.items() if not k.endswith("_uncorrected")}
    )


def evaluate_run(
    run_dir: Path, etl: EtlRun, interactions: tuple[Interactions, Interactions]
) -> tuple[dict[str, Any], Scored]:
    """Reload one run's saved model(s) and score it on the validation split."""
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
        from models.scoring import predict_ranking

        model = tf.keras.models.load_model(str(run_dir / "model"))
        loader = make_loader(etl.valid_dir, schema, tables, 8192, shuffle=False)
        labels, probs, items = predict_ranking(model, loader)
        valid = interactions[1]
        if not (np.array_equal(labels, valid.labels) and np.array_equal(items, valid.items)):
            raise MmrecError(
                f"{run_dir.name}: the loader's {labels.size} validation rows do not match "
                f"{etl.valid_dir}'s {valid.labels.size} rows in order; rerun `mmrec etl`"
            )
        metrics: dict[str, Any] = {
            "ranking": ranking_metrics(labels, probs, items, etl.cold_item_ids)
        }
        scored = Scored(ranking=probs)
    else:
        from models.towers import RetrievalData, retrieval_accumulators_of

        query = tf.keras.models.load_model(str(run_dir / "query_tower"))
        items_tower = tf.keras.models.load_model(str(run_dir / "item_tower"))
        data = RetrievalData(etl, schema.excluding_by_tag(Tags.TARGET), tables, interactions)
        saved_pop = run_dir / "item_log_popularity.npy"
        if saved_pop.exists():
            data.log_popularity = np.load(saved_pop)
        accs = retrieval_accumulators_of(
            query,
            items_tower,
            data,
            temperature=config["resolved"]["temperature"],
            popularity_correction=config["popularity_correction"],
        )
        metrics = {"retrieval": {k: acc.result() for k, acc in accs.items()}}
        scored = _scored_retrieval(accs)
    result = {
        "run": run_dir.name,
        "model": config["model"],
        "modalities": list(modalities),
        "control": config["control"],
        "seed": config["seed"],
        "etl_run": config["etl_run"],
        "metrics": metrics,
        "seconds": round(time.time() - started, 2),
    }
    return result, scored


def _variants(etl: EtlRun) -> dict[str, np.ndarray]:
    """Retrieval candidate sets: every movie, and the cold movies when the split has any."""
    items = np.arange(FIRST_ID, etl.n_items, dtype=np.int64)
    out = {"all": items}
    if etl.cold_item_ids.size:
        out["cold"] = np.intersect1d(items, etl.cold_item_ids)
    return out


def _retrieval_baseline(
    score_for: Any, variants: dict[str, np.ndarray], train: Interactions, valid: Interactions
) -> tuple[dict[str, Any], Scored]:
    accs = {
        name: retrieval_accumulate(score_for(cands), cands, train, valid)
        for name, cands in variants.items()
    }
    return {k: a.result() for k, a in accs.items()}, _scored_retrieval(accs)


def baselines_of(
    etl: EtlRun, cfg: EvaluateConfig, interactions: tuple[Interactions, Interactions]
) -> tuple[dict[str, Any], dict[str, dict[str, Scored]]]:
    """Every baseline's metrics (JSON) and scores (for intervals), ranking and retrieval."""
    from models import ease
    from models.baselines import popularity_scores, ranking_baselines
    from models.content_knn import ContentKnn

    train, valid = interactions
    cold = etl.cold_item_ids
    n_users = int(max(train.users.max(), valid.users.max())) + 1
    doc: dict[str, Any] = {"ranking": {}, "retrieval": {}, "info": {}}
    scored: dict[str, dict[str, Scored]] = {"ranking": {}, "retrieval": {}}

    def ranking(name: str, scores: np.ndarray, probabilities: bool = True) -> None:
        m = ranking_metrics(valid.labels, scores, valid.items, cold)
        if not probabilities:
            for group in m.values():
                group["logloss"] = float("nan")
        doc["ranking"][name] = m
        scored["ranking"][name] = Scored(ranking=scores, probabilities=probabilities)

    for name, probs in ranking_baselines(train, valid, cfg.baseline_strength).items():
        ranking(name, probs)
    variants = _variants(etl)
    log_pop = np.log1p(popularity_scores(train, etl.n_items))
    rng_seed = cfg.bootstrap_seed

    def pop_scores(cands: np.ndarray) -> Any:
        return lambda block: np.broadcast_to(log_pop[cands], (block.size, cands.size))

    def random_scores(cands: np.ndarray) -> Any:
        rng = np.random.default_rng(rng_seed)
        return lambda block: rng.random((block.size, cands.size), dtype=np.float32)

    for name, fn in (("popularity", pop_scores), ("random", random_scores)):
        doc["retrieval"][name], scored["retrieval"][name] = _retrieval_baseline(
            fn, variants, train, valid
        )
    if not cfg.strong_baselines:
        return doc, scored

    # LightGBM: ids, genres, year, rates and counts; and the same with the content vectors
    from models.gbdt import ItemFeatures, fit_predict

    table = item_table(etl, ["movieId", "genres", "year"])
    items = ItemFeatures.from_table(table, etl.n_items)
    sizes = (n_users, etl.n_items)
    started = time.time()
    probs, info = fit_predict(train, valid, items, sizes=sizes, strength=cfg.baseline_strength)
    ranking("lightgbm", probs)
    doc["info"]["lightgbm"] = {**info, "seconds": round(time.time() - started, 2)}
    modalities = [m for m in etl.matrices]
    if modalities:
        vectors = np.hstack([etl.matrices[m] for m in modalities])
        name = f"lightgbm+{'+'.join(modalities)}"
        started = time.time()
        probs, info = fit_predict(
            train, valid, items, sizes=sizes, vectors=vectors, strength=cfg.baseline_strength
        )
        ranking(name, probs)
        doc["info"][name] = {**info, "seconds": round(time.time() - started, 2)}

    # EASE
    started = time.time()
    model = ease.fit(train, n_users, etl.n_items, max_items=cfg.ease_max_items)
    accs = ease.accumulators(model, variants, train, valid)
    doc["retrieval"]["ease"] = {k: a.result() for k, a in accs.items()}
    scored["retrieval"]["ease"] = _scored_retrieval(accs)
    doc["info"]["ease"] = {
        "lambda": model.lam,
        "lambda_on_train_slice": model.selection,
        "items_in_model": int(model.items.size),
        "note": model.note,
        "seconds": round(time.time() - started, 2),
    }

    # content kNN per modality (the cold-start floor for content models)
    for m in modalities:
        knn = ContentKnn(etl.matrices[m], etl.has[m], train, n_users)
        ranking(f"{m} knn", knn.rows(valid.users, valid.items), probabilities=False)
        doc["retrieval"][f"{m} knn"], scored["retrieval"][f"{m} knn"] = _retrieval_baseline(
            knn.score_fn, variants, train, valid
        )
    return doc, scored


def _cached_baselines(
    etl: EtlRun, cfg: EvaluateConfig, interactions: Any, record: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Scored]]]:
    wanted = {
        "cache_version": CACHE_VERSION,
        "baseline_strength": cfg.baseline_strength,
        "strong_baselines": cfg.strong_baselines,
        "ease_max_items": cfg.ease_max_items,
        "bootstrap_seed": cfg.bootstrap_seed,  # the random baseline's seed
    }
    made_from = digests([etl.path / "summary.json"])
    done = check_done(record, wanted, force=cfg.force, inputs=made_from)
    if done is not None and record.with_suffix(".npz").exists():
        return done["doc"], _unpack(_load_scored(record.with_suffix(".npz")))
    doc, scored = baselines_of(etl, cfg, interactions)
    _save_scored(record.with_suffix(".npz"), _pack(scored))
    write_json_atomic(record, record_of(wanted, made_from, doc=doc))
    return doc, scored


def _pack(scored: dict[str, dict[str, Scored]]) -> Scored:
    """Every baseline's scores in one Scored, keyed `<kind>|<name>` (one .npz file)."""
    out = Scored()
    ranking = {}
    for kind, by_name in scored.items():
        for name, s in by_name.items():
            if s.ranking is not None:
                ranking[f"{name}|{int(s.probabilities)}"] = s.ranking
            for variant, v in s.retrieval.items():
                out.retrieval[f"{kind}|{name}|{variant}"] = v
    out.extra = ranking
    return out


def _unpack(packed: Scored) -> dict[str, dict[str, Scored]]:
    out: dict[str, dict[str, Scored]] = {"ranking": {}, "retrieval": {}}
    for key, probs in packed.extra.items():
        name, probabilities = key.rsplit("|", 1)
        out["ranking"][name] = Scored(ranking=probs, probabilities=bool(int(probabilities)))
    for key, v in packed.retrieval.items():
        kind, name, variant = key.split("|")
        out[kind].setdefault(name, Scored()).retrieval[variant] = v
    return out


def _cached_run(
    run_dir: Path, etl: EtlRun, interactions: Any, record: Path, force: bool
) -> tuple[dict[str, Any], Scored]:
    made_from = {
        **digests([TrainRunPaths(run_dir).summary]),  # retrained: scored again
        "cache_version": CACHE_VERSION,
    }
    done = check_done(record, {}, force=force, inputs=made_from)
    if done is not None and record.with_suffix(".npz").exists():
        return done["result"], _load_scored(record.with_suffix(".npz"))
    result, scored = evaluate_run(run_dir, etl, interactions)
    _save_scored(record.with_suffix(".npz"), scored)
    write_json_atomic(record, record_of({}, made_from, result=result))
    return result, scored


def _intervals(
    doc: dict[str, Any],
    results: dict[str, dict[str, Any]],
    run_scores: dict[str, Scored],
    base_scores: dict[str, dict[str, Scored]],
    boot: Bootstrapper,
) -> None:
    """Add intervals to every metric, then configurations, ablation gains and baseline gains."""
    resampled: dict[str, Any] = {}
    for name, scored in run_scores.items():
        kind = "ranking" if scored.ranking is not None else "retrieval"
        r = boot.ranking(scored) if kind == "ranking" else boot.retrieval(scored)
        with_ci(results[name]["metrics"][kind], r)
        resampled[name] = r
    base_resampled: dict[str, dict[str, Any]] = {"ranking": {}, "retrieval": {}}
    for kind, by_name in base_scores.items():
        for name, scored in by_name.items():
            r = boot.ranking(scored) if kind == "ranking" else boot.retrieval(scored)
            with_ci(doc["baselines"][kind][name], r)
            base_resampled[kind][name] = r
    configs: dict[str, Config] = {}
    for name, res in sorted(results.items()):
        key = config_key(res["model"], res["modalities"], res["control"])
        c = configs.setdefault(key, Config(res["model"], tuple(res["modalities"]), res["control"]))
        c.runs.append(name)
        c.seeds.append(int(res.get("seed", 0)))
        c.resampled.append(resampled[name])
    doc["configurations"] = {k: c.summary() for k, c in configs.items()}
    doc["ablation"] = {kind: ablation(configs, kind) for kind in ("ranking", "retrieval")}
    doc["versus_baselines"] = {}
    for kind, name in STRONGEST.items():
        if name in base_resampled[kind]:
            b = Config("baseline", (), "none", runs=[name], resampled=[base_resampled[kind][name]])
            doc["versus_baselines"][kind] = versus_baseline(configs, b, kind)
    doc["bootstrap"] = boot.info()


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Evaluate finished runs (all, or those named) and the baselines of their ETL runs."""
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    run_dirs = finished_runs(paths.runs, cfg.runs)
    if not run_dirs:
        raise MmrecError(f"no finished training runs under {paths.runs}; run `mmrec train` first")
    if cfg.bootstrap_samples < 10:
        raise MmrecError(f"--bootstrap-samples {cfg.bootstrap_samples}: use at least 10")
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
        results: dict[str, dict[str, Any]] = {}
        run_scores: dict[str, Scored] = {}
        for d in dirs:
            results[d.name], run_scores[d.name] = _cached_run(
                d, etl, interactions, paths.run_evaluation(d.name), cfg.force
            )
        base_doc, base_scores = _cached_baselines(
            etl, cfg, interactions, paths.baseline_evaluation(etl_name)
        )
        doc = {
            "dataset": cfg.dataset,
            "etl_run": etl_name,
            "split": etl.summary.get("split", {}).get("kind"),
            "cold_items": int(etl.cold_item_ids.size),
            "baselines": {"ranking": base_doc["ranking"], "retrieval": base_doc["retrieval"]},
            "baseline_info": base_doc["info"],
            "runs": results,
        }
        boot = Bootstrapper(
            interactions[1], etl.cold_item_ids, cfg.bootstrap_samples, cfg.bootstrap_seed
        )
        _intervals(doc, results, run_scores, base_scores, boot)
        target = paths.evaluation_of(etl_name)
        write_json_atomic(target, doc)
        written[etl_name] = str(target)
    return {"dataset": cfg.dataset, "evaluations": written, "runs": sum(map(len, by_etl.values()))}
