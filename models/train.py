"""`mmrec train`: fit a DLRM or two-tower model on an ETL run and save the best epoch.

Outputs, under `<root>/runs/<run-name>/` (written in a temporary folder and renamed into place
only when training and scoring succeeded; a rerun after success is a no-op unless forced).
While training, every finished epoch is saved in `<root>/runs/.<run-name>.in-progress/`
(models/resume.py), so a rerun with the same config after an interruption resumes there:
  model/          the best epoch's Merlin Models SavedModel (DLRM, or the whole two-tower)
  query_tower/, item_tower/   two-tower only: each tower as its own SavedModel, for retrieval
  checkpoints/    the best epoch's weights (Keras save_weights; the final model loads them)
  tensorboard/    TensorBoard logs
  history.json    per-epoch loss and validation metrics
  metrics.json    validation metrics of the restored best epoch
  calibration.json  DLRM: Platt scaling of the logit, fitted on train rows held out of fitting
  config.json     the resolved hyper-parameters and inputs
  summary.json    what `train` returns (written last: its presence marks the run finished)

Data-parallel: `horovodrun -np N mmrec train ...` trains on N ranks (CPU processes with Gloo, or
one per GPU); models/distributed.py holds what differs: rank 0 alone writes all of the above,
metrics are averaged before early stopping, the learning rate is scaled (docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from mmrec.config import TrainConfig
from mmrec.contracts import DatasetPaths, TrainRunPaths, seed_run_name, train_run_name
from mmrec.done import check_done, parameters_of
from mmrec.errors import MmrecError
from mmrec.io import atomic_dir, read_json, write_json_atomic
from models.distributed import (
    agreement,
    even_steps,
    fixed_steps,
    ranks,
    say,
    scaling,
    sync_callbacks,
    whole_split,
)
from models.inputs import (
    CONTROLS,
    EtlRun,
    feature_schema,
    gather_tables,
    load_etl,
    make_loader,
    parse_modalities,
    pretrained_stats,
    resolve_etl_run,
)
from models.resume import (
    EpochState,
    Progress,
    copy_tree,
    identity_of,
    jsonable,
    make_early_stopping,
    progress_dir_of,
)
from models.tasks import TASKS, Built, Inputs

MODELS = tuple(TASKS)
INTERACTIONS = ("liked", "all")  # two-tower training rows: label 1 only, or every rating


def defaults_for(model: str, train_rows: int) -> dict[str, Any]:
    """Hyper-parameters by dataset size (models/tasks.py holds them per kind of model)."""
    return TASKS[model].defaults(train_rows)


def run_name_of(cfg: TrainConfig, etl_run: str) -> str:
    return cfg.run_name or train_run_name(etl_run, cfg.model, cfg.modalities, cfg.control)


def train_seeds(cfg: TrainConfig) -> list[dict[str, Any]]:
    """`train` once per seed (cfg.seed, cfg.seed + 1, ...), each its own run folder."""
    if cfg.seeds < 1:
        raise MmrecError(f"--seeds {cfg.seeds}: give at least 1")
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    base = run_name_of(cfg, resolve_etl_run(paths.etl, cfg.etl_run).name)
    out = []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        one = dataclasses.replace(
            cfg, seed=seed, seeds=1, run_name=seed_run_name(base, seed, cfg.seed)
        )
        out.append(train(one))
    return out


def _train_rows(run: EtlRun) -> int:
    rows = run.summary.get("rows", {})
    if isinstance(rows, dict) and isinstance(rows.get("train"), int):
        return rows["train"]
    import pyarrow.parquet as pq

    from models.data import parquet_files

    return sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(run.train_dir))


def _check(cfg: TrainConfig) -> None:
    if cfg.model not in MODELS:
        raise MmrecError(f"unknown model {cfg.model!r}: choose from {', '.join(MODELS)}")
    if cfg.control not in CONTROLS:
        raise MmrecError(f"unknown control {cfg.control!r}: choose from {', '.join(CONTROLS)}")
    if cfg.control != "none" and not cfg.modalities:
        raise MmrecError("a control replaces pretrained vectors: give --modalities too")
    parse_modalities(cfg.modalities)


def _setup_tf(seed: int, mixed_precision: str) -> dict[str, Any]:
    tf.keras.utils.set_random_seed(seed)
    gpus = tf.config.list_physical_devices("GPU")
    use_mp = mixed_precision == "on" or (mixed_precision == "auto" and bool(gpus))
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if use_mp else "float32")
    return {"gpus": len(gpus), "mixed_precision": use_mp}


def _restore(progress: Progress, built: Built, checkpoint: Any, x: Any, state: EpochState) -> None:
    """Load the newest epoch into the model and optimizer, created first so nothing is dropped.

    Keras creates layer weights on the first call and Adam's moments on the first step; a
    checkpoint read before that would park the values and `assert_consumed` could not vouch for
    them. One forward pass on a batch and `optimizer.build` create them without training.
    """
    built.model(x, training=False)
    built.model.optimizer.build(built.model.trainable_variables)
    progress.restore(checkpoint, state)
    restored = int(built.model.optimizer.iterations.numpy())
    if restored != state.iterations:
        raise MmrecError(
            f"{state.checkpoint} restored the optimizer at step {restored}, but its state.json "
            f"says {state.iterations}; rerun with --force to start over"
        )


def _fit_done(state: EpochState | None, epochs: int) -> bool:
    """Whether the saved state already ended training (early stop or the epoch budget)."""
    return state is not None and (state.stopped or state.epoch >= epochs)


def _resume_message(name: str, state: EpochState, epochs: int) -> str:
    """The one stderr line that says a run continues, and where (the user expected a restart)."""
    if _fit_done(state, epochs):
        return (
            f"resuming {name} after epoch {state.epoch} of {epochs}: training had ended, saving it"
        )
    return f"resuming {name} at epoch {state.epoch + 1} of {epochs}"


# Not parameters of a run: where it lives and how to ask for a redo.
NOT_PARAMETERS = ("data_dir", "force", "run_name", "seeds")  # seeds: one run is one seed


def _finished(cfg: TrainConfig, run: TrainRunPaths, etl_run: str) -> dict[str, Any] | None:
    """The finished run's summary when its config.json matches `cfg` (mmrec.done's rule)."""
    if cfg.force or not run.summary.exists():
        return None
    if not run.config.exists():  # not written by `mmrec train` (a hand-made run folder)
        return read_json(run.summary)
    recorded = read_json(run.config)
    wanted = parameters_of(
        cfg,
        NOT_PARAMETERS,
        etl_run=etl_run,
        modalities=list(parse_modalities(cfg.modalities)),
    )
    # config.json records the resolved ETL run and modalities, as `wanted` does
    check_done(
        run.config,
        wanted,
        force=False,
        recorded={k: recorded[k] for k in wanted if k in recorded},
        hint=", or choose another --run-name",
    )
    return read_json(run.summary)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train one model; returns the run's summary (paths, best epoch, validation metrics).

    Resumes from `<runs>/.<run-name>.in-progress/` (models/resume.py) when an earlier process
    with the same config died after finishing at least one epoch.
    """
    _check(cfg)
    if cfg.seeds != 1:
        raise MmrecError("train() trains one seed; use train_seeds() for --seeds")
    r = ranks()
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    etl_path = resolve_etl_run(paths.etl, cfg.etl_run)
    name = run_name_of(cfg, etl_path.name)
    run_dir = paths.runs / name
    # rank 0 decides (and raises for every rank when the parameters changed)
    done = r.decide(lambda: _finished(cfg, TrainRunPaths(run_dir), etl_path.name), "mmrec.done")
    if done is not None:
        # A crash between publishing and cleaning up leaves a stale in-progress folder.
        if not r.writer:
            return {"run": name, "path": str(run_dir), "rank": r.rank, "skipped": True}
        shutil.rmtree(progress_dir_of(run_dir), ignore_errors=True)
        done["skipped"] = True
        return done

    started = time.time()
    run = load_etl(etl_path)
    modalities = parse_modalities(cfg.modalities)
    hp = defaults_for(cfg.model, _train_rows(run))
    for key in hp:
        value = getattr(cfg, key, None)
        if value is not None:
            hp[key] = tuple(value) if key == "mlp" else value
    if hp.get("interactions", "liked") not in INTERACTIONS:
        raise MmrecError(
            f"unknown interactions {hp['interactions']!r}: choose from {', '.join(INTERACTIONS)}"
        )
    device = _setup_tf(cfg.seed, cfg.mixed_precision)
    scale = scaling(hp, cfg.lr_warmup_epochs)

    identity = identity_of(cfg, hp, etl_path, device["mixed_precision"], r.size)
    progress = Progress(run_dir, identity)
    task = TASKS[cfg.model]
    schema = feature_schema(run, modalities, with_label=True, continuous=task.continuous)
    tables = gather_tables(run, modalities, cfg.control, cfg.seed)
    stats = pretrained_stats(run, modalities)
    fit_schema = schema if task.with_label else _no_label(schema)
    train_loader = make_loader(
        run.train_dir,
        fit_schema,
        tables,
        hp["batch_size"],
        shuffle=True,
        seed=cfg.seed,
        positives_only=task.positives_only(hp),
        holdout=task.holdout(cfg),
        id_dropout=hp["id_dropout"],
    )
    # N ranks: equal steps or an error (rows filtered per file: a few steps apart are evened too)
    steps = even_steps(train_loader, run.train_dir, "train", *task.filtered_rows(cfg, hp))
    inputs = Inputs(
        cfg, {**hp, "learning_rate": scale["learning_rate"]}, run, fit_schema, tables, stats
    )
    built = task.build(inputs)
    if built.valid_loader is not None:
        even_steps(built.valid_loader, run.valid_dir, "valid")
    # after the checks above, which fail without leaving state; rank 0 decides for all ranks
    state = r.decide(lambda: progress.open(cfg.force), "mmrec.resume")
    model, monitor = built.model, task.monitor
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    if state is not None:
        probe = make_loader(run.valid_dir, fit_schema, tables, 64, shuffle=False)
        x, _ = next(iter(whole_split(probe)))
        _restore(progress, built, checkpoint, x, state)
        say(_resume_message(name, state, hp["epochs"]))
    early = make_early_stopping(progress, checkpoint, monitor, cfg.patience, state, r.writer)
    start, average, stop = sync_callbacks(scale, steps)  # empty with one process
    callbacks = [
        *start,  # N ranks: rank 0's variables, learning-rate warm-up
        *built.callbacks,  # they add the monitored value, so they run before early stopping
        *average,  # N ranks: metrics averaged over the ranks before early stopping reads them
        early,
        *stop,  # N ranks: rank 0's stop decision on every rank
    ]
    if r.writer:
        log_dir = str(progress.tensorboard_dir)
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False))
    fit_started = time.time()
    if not _fit_done(state, hp["epochs"]):
        model.fit(
            fixed_steps(train_loader, steps),
            validation_data=built.valid_loader,
            epochs=hp["epochs"],
            initial_epoch=state.epoch if state else 0,
            callbacks=callbacks,
            verbose=0 if _quiet() else 2,
        )
    fit_s = time.time() - fit_started
    iterations = int(model.optimizer.iterations.numpy())
    hist = early.history
    scores = hist.get(monitor, [])
    best_epoch = int(np.argmax(scores)) + 1 if scores else len(hist.get("loss", []))
    ranks_agree = agreement(model, len(hist.get("loss", [])))  # N ranks: same epochs, weights
    if not r.writer:  # rank 0 scores and publishes; the others are done
        return {"run": name, "path": str(run_dir), "rank": r.rank}
    best = early.best_weights_path
    if best is not None:  # the final model is the best epoch's, read from disk
        progress.load_best(model, best)

    with atomic_dir(run_dir) as tmp:
        if best is not None:
            copy_tree(best.parent, tmp / "checkpoints")
        else:  # the monitor never reported: keep the last weights, as Keras would
            model.save_weights(str(tmp / "checkpoints" / "best.weights"))
        copy_tree(progress.tensorboard_dir, tmp / "tensorboard")
        # N ranks: Keras validated this rank's shard only; publish scores the whole split
        metrics = task.publish(built, inputs, tmp, sharded=r.active)

        config = {
            **{k: jsonable(v) for k, v in dataclasses.asdict(cfg).items()},
            "resolved": {k: jsonable(v) for k, v in hp.items()},
            "modalities": list(modalities),
            "etl_run": etl_path.name,
            "etl_path": str(etl_path),
            "embedding_mode": run.mode,
            "device": device,
            "distributed": scale,
        }
        summary = {
            "run": name,
            "path": str(run_dir),
            "model": cfg.model,
            "modalities": list(modalities),
            "control": cfg.control,
            "etl_run": etl_path.name,
            "epochs_run": len(hist.get("loss", [])),
            "best_epoch": best_epoch,
            "monitor": monitor,
            "metrics": metrics,
            **built.summary,
            "resumed_from_epoch": state.epoch if state else None,
            "optimizer_iterations": iterations,
            "fit_seconds": round(fit_s, 2),
            "distributed": None if ranks_agree is None else {**scale, **ranks_agree},
            "seconds": round(time.time() - started, 2),
        }
        out = TrainRunPaths(tmp)
        write_json_atomic(out.history, hist)
        write_json_atomic(out.metrics, metrics)
        write_json_atomic(out.config, config)
        write_json_atomic(out.summary, summary)
    progress.remove()
    return summary


def _no_label(schema: Any) -> Any:
    from merlin.schema import Tags

    return schema.excluding_by_tag(Tags.TARGET)


def _quiet() -> bool:
    import os

    return os.environ.get("MMREC_NO_PROGRESS") == "1"


def load_run_config(run_dir: Path) -> dict[str, Any]:
    """The config.json of a finished run (evaluate/report read it)."""
    f = TrainRunPaths(run_dir).config
    if not f.exists():
        raise MmrecError(f"{run_dir} is not a finished training run (no config.json)")
    return read_json(f)
