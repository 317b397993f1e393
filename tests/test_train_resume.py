"""`mmrec train` resumes after a real SIGKILL from the last finished epoch.

A training process is started through the CLI, killed once its in-progress folder holds
finished epochs, and its folder is kept as a snapshot; each test puts the snapshot back and
reruns `mmrec train` (in-process through `mmrec.cli.main`, the same parsing as the command).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from builders import make_train_tiny

from mmrec.cli import main
from models.resume import progress_dir_of

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 8
# lr 0.03 with small batches overfits the tiny data within a few epochs, so the best epoch is
# usually not the last one: the final model must come from the saved best weights.
COMMON = ["--dataset", "tiny", "--etl-run", "cold-items-lookup", "--modalities", "text"]
COMMON += ["--batch-size", "64", "--lr", "0.03", "--mixed-precision", "off"]
COMMON += ["--patience", str(EPOCHS)]
KILL_AT = 2  # finished epochs in the in-progress folder before SIGKILL


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_train_tiny(tmp_path_factory.mktemp("train"))


def argv(data_dir: Path, model: str, *extra: str) -> list[str]:
    epochs = [] if "--epochs" in extra else ["--epochs", str(EPOCHS)]
    return ["train", "--data-dir", str(data_dir), "--model", model, *COMMON, *epochs, *extra]


def run_dir_of(data_dir: Path, model: str) -> Path:
    return data_dir / "tiny" / "runs" / f"cold-items-lookup.{model}.text.none"


def finished_epochs(progress: Path) -> list[Path]:
    return sorted(progress.glob("epoch-[0-9][0-9][0-9][0-9]"))


def kill_when(
    data_dir: Path, model: str, snapshot: Path, done: Callable[[dict], bool], *extra: str
) -> dict:
    """Start `mmrec train` in a subprocess and SIGKILL it as soon as its newest saved epoch
    satisfies `done`; keep a copy of its in-progress folder and return that epoch's state."""
    run_dir = run_dir_of(data_dir, model)
    progress = progress_dir_of(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh start: no finished run, no state
    shutil.rmtree(progress, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMREC_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "mmrec.cli", *argv(data_dir, model, *extra)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    try:
        while not done(newest_state(progress)):
            if proc.poll() is not None:
                err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                pytest.fail(f"training ended (rc {proc.returncode}) before the kill:\n{err}")
            if time.monotonic() > deadline:
                pytest.fail("the awaited epoch did not come within 600 s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir_of(data_dir, model) / "summary.json").exists()
    shutil.copytree(progress, snapshot)
    return newest_state(snapshot)


def newest_state(progress: Path) -> dict:
    """state.json of the newest finished epoch ({"epoch": 0} before the first one)."""
    epochs = finished_epochs(progress)
    if not epochs:
        return {"epoch": 0, "stopped": False}
    return json.loads((epochs[-1] / "state.json").read_text())


def put_back(data_dir: Path, model: str, snapshot: Path) -> Path:
    """Reset the run to the moment of the kill: no published run, the killed state in place."""
    run_dir = run_dir_of(data_dir, model)
    shutil.rmtree(run_dir, ignore_errors=True)
    progress = progress_dir_of(run_dir)
    shutil.rmtree(progress, ignore_errors=True)
    shutil.copytree(snapshot, progress)
    return progress


@pytest.fixture(scope="module")
def killed_dlrm(tiny: Path, tmp_path_factory) -> tuple[Path, dict]:
    snapshot = tmp_path_factory.mktemp("killed") / "dlrm"
    return snapshot, kill_when(tiny, "dlrm", snapshot, lambda s: s["epoch"] >= KILL_AT)


def valid_batch(data_dir: Path, model: str) -> dict:
    from merlin.schema import Tags

    from models.inputs import feature_schema, gather_tables, load_etl, make_loader

    run = load_etl(data_dir / "tiny" / "etl" / "cold-items-lookup")
    schema = feature_schema(run, ("text",), with_label=True, continuous=model == "dlrm")
    if model != "dlrm":
        schema = schema.excluding_by_tag(Tags.TARGET)
    tables = gather_tables(run, ("text",), "none", 42)
    x, _ = next(iter(make_loader(run.valid_dir, schema, tables, 512, shuffle=False)))
    return x


def check_resumed_history(summary: dict, history: dict, killed: dict) -> None:
    """Every epoch once: the killed run's epochs verbatim, then the resumed ones."""
    k = killed["epoch"]
    assert summary["resumed_from_epoch"] == k
    assert summary["epochs_run"] == EPOCHS
    for key, values in history.items():
        assert len(values) == EPOCHS, key
        assert values[:k] == pytest.approx(killed["history"][key], abs=0), key
    steps_per_epoch = killed["iterations"] // k
    assert killed["iterations"] == steps_per_epoch * k > 0
    # Adam continued from the saved step count instead of starting again at zero.
    assert summary["optimizer_iterations"] == steps_per_epoch * EPOCHS
    monitor = history[summary["monitor"]]
    assert summary["best_epoch"] == int(np.argmax(monitor)) + 1


# not slow: the default run (and CI) must see one real SIGKILL and resume
def test_killed_dlrm_run_resumes_at_its_last_epoch(
    tiny: Path,
    killed_dlrm: tuple[Path, dict],
    capsys: pytest.CaptureFixture,
) -> None:
    import tensorflow as tf

    snapshot, killed = killed_dlrm
    assert killed["epoch"] >= KILL_AT
    progress = put_back(tiny, "dlrm", snapshot)
    assert main(argv(tiny, "dlrm")) == 0
    err = capsys.readouterr().err
    run_dir = run_dir_of(tiny, "dlrm")
    assert f"resuming {run_dir.name} at epoch {killed['epoch'] + 1} of {EPOCHS}" in err
    assert "over" not in err
    assert not progress.exists()  # removed once the run was published

    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    check_resumed_history(summary, history, killed)
    for name in ("model", "checkpoints", "tensorboard", "metrics.json", "config.json"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tensorboard").rglob("*.tfevents.*"))

    # The final model carries the best epoch's weights, as saved on disk.
    best = summary["best_epoch"]
    auc = summary["metrics"]["ranking"]["all"]["auc"]
    assert auc == pytest.approx(history["val_auc"][best - 1], abs=2e-3)
    x = valid_batch(tiny, "dlrm")
    final = np.asarray(tf.keras.models.load_model(str(run_dir / "model"))(x, training=False))
    weights = [run_dir / "checkpoints" / "best.weights"]
    if best <= killed["epoch"]:  # the best epoch came before the crash: its weights survived it
        weights.append(snapshot / killed["best_weights"])
    calibration = json.loads((run_dir / "calibration.json").read_text())
    for prefix in weights:
        ref = tf.keras.models.load_model(str(run_dir / "model"))
        ref.load_weights(str(prefix)).assert_existing_objects_matched()
        if prefix != weights[0]:  # the in-progress snapshot predates the calibration
            from models.layers import calibrated_output

            out = calibrated_output(ref)
            assert float(out.scale.numpy()) == 1.0 and float(out.shift.numpy()) == 0.0
            out.scale.assign(calibration["scale"])
            out.shift.assign(calibration["shift"])
        np.testing.assert_allclose(np.asarray(ref(x, training=False)), final, atol=1e-6)

    # A finished run is a no-op.
    stamp = (run_dir / "summary.json").stat().st_mtime_ns
    assert main(argv(tiny, "dlrm")) == 0
    assert "already trained" in capsys.readouterr().out
    assert (run_dir / "summary.json").stat().st_mtime_ns == stamp
    assert not progress.exists()


@pytest.mark.slow
def test_changed_config_or_force_starts_over(
    tiny: Path,
    killed_dlrm: tuple[Path, dict],
    capsys: pytest.CaptureFixture,
) -> None:
    snapshot, killed = killed_dlrm
    steps_per_epoch = killed["iterations"] // killed["epoch"]
    run_dir = run_dir_of(tiny, "dlrm")
    put_back(tiny, "dlrm", snapshot)
    assert main(argv(tiny, "dlrm", "--epochs", "1", "--lr", "0.02")) == 0
    err = capsys.readouterr().err
    assert f"starting {run_dir.name} over (its config changed" in err
    assert "config.learning_rate" in err and "config.epochs" in err
    assert "resuming" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from_epoch"] is None
    assert summary["epochs_run"] == 1
    assert summary["optimizer_iterations"] == steps_per_epoch

    put_back(tiny, "dlrm", snapshot)
    assert main(argv(tiny, "dlrm", "--force")) == 0
    err = capsys.readouterr().err
    assert f"starting {run_dir.name} over (--force)" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from_epoch"] is None
    assert summary["epochs_run"] == EPOCHS


@pytest.mark.slow
def test_corrupt_state_fails_naming_the_file(
    tiny: Path,
    killed_dlrm: tuple[Path, dict],
    capsys: pytest.CaptureFixture,
) -> None:
    snapshot, _ = killed_dlrm
    progress = put_back(tiny, "dlrm", snapshot)
    state = finished_epochs(progress)[-1] / "state.json"
    state.write_text('{"epoch": 2, "hist')
    assert main(argv(tiny, "dlrm")) == 2
    err = capsys.readouterr().err
    assert f"in-progress training state {state} is unreadable" in err
    assert "--force" in err

    progress = put_back(tiny, "dlrm", snapshot)
    data = next(finished_epochs(progress)[-1].glob("ckpt.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    assert main(argv(tiny, "dlrm")) == 2
    err = capsys.readouterr().err
    assert f"in-progress checkpoint {finished_epochs(progress)[-1] / 'ckpt'}" in err
    assert "--force" in err
    assert not run_dir_of(tiny, "dlrm").exists()


@pytest.mark.slow
def test_killed_two_tower_run_resumes_with_its_best_recall(
    tiny: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    snapshot = tmp_path / "snapshot"
    killed = kill_when(tiny, "two-tower", snapshot, lambda s: s["epoch"] >= KILL_AT)
    assert killed["epoch"] >= KILL_AT
    assert main(argv(tiny, "two-tower")) == 0
    run_dir = run_dir_of(tiny, "two-tower")
    err = capsys.readouterr().err
    assert f"resuming {run_dir.name} at epoch {killed['epoch'] + 1} of {EPOCHS}" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    check_resumed_history(summary, history, killed)
    for name in ("query_tower", "item_tower", "item_log_popularity.npy", "checkpoints"):
        assert (run_dir / name).exists(), name
    # The validation callback scores the same users as the final "all" metrics, so the final
    # (best-epoch) model reproduces the best epoch's recall exactly.
    recall = summary["metrics"]["retrieval"]["all"]["recall@10"]
    assert recall == pytest.approx(history["val_recall@10"][summary["best_epoch"] - 1], abs=1e-9)
    assert not progress_dir_of(run_dir).exists()


@pytest.mark.slow
def test_run_killed_after_early_stopping_publishes_its_best_epoch(
    tiny: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """Killed while saving after early stopping: the rerun trains no more and publishes the best
    epoch's weights, which only the disk still holds (EarlyStopping kept them in memory)."""
    killed = kill_when(
        tiny, "dlrm", tmp_path / "snapshot", lambda s: s["stopped"], "--patience", "1"
    )
    k = killed["epoch"]
    assert killed["best_epoch"] + 1 < k  # stopped because the last epoch was not the best
    assert main(argv(tiny, "dlrm", "--patience", "1")) == 0
    run_dir = run_dir_of(tiny, "dlrm")
    err = capsys.readouterr().err
    assert f"resuming {run_dir.name} after epoch {k} of {EPOCHS}: training had ended" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    assert summary["resumed_from_epoch"] == k and summary["epochs_run"] == k
    assert summary["optimizer_iterations"] == killed["iterations"]  # not one step more
    assert history == killed["history"]
    best = summary["best_epoch"]
    assert best == killed["best_epoch"] + 1
    auc = summary["metrics"]["ranking"]["all"]["auc"]
    assert auc == pytest.approx(history["val_auc"][best - 1], abs=2e-3)
    assert abs(auc - history["val_auc"][k - 1]) > 2e-3  # and not the last epoch's model


def test_progress_keeps_its_own_state_and_drops_another_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Fast, no TensorFlow: which in-progress state a rerun keeps, and what it says."""
    from mmrec.config import TrainConfig
    from models.resume import Progress, identity_of

    etl = tmp_path / "etl"
    etl.mkdir()
    (etl / "summary.json").write_text('{"rows": {"train": 10}}')
    cfg = TrainConfig(dataset="tiny", data_dir=tmp_path, epochs=5)
    run_dir = tmp_path / "runs" / "r"

    def progress(**kw: object) -> Progress:
        hp = {"epochs": 5, "learning_rate": kw.pop("lr", 3e-3)}
        return Progress(run_dir, identity_of(replace(cfg, **kw), hp, etl, False))

    first = progress()
    assert first.open(force=False) is None
    epoch = first.dir / "epoch-0002"
    epoch.mkdir()
    state = {"epoch": 2, "history": {"loss": [0.7, 0.6]}, "best": 0.8, "best_epoch": 1}
    state |= {"wait": 0, "stopped": False, "iterations": 20, "best_weights": "best-0002/w"}
    (epoch / "state.json").write_text(json.dumps({"fingerprint": first.fingerprint, **state}))
    (first.dir / "epoch-0001").mkdir()  # an older epoch and a killed write: pruned
    (first.dir / ".epoch-0003.x.tmp").mkdir()

    kept = progress(force=True).open(force=False)  # force is not part of the identity
    assert kept is not None and kept.epoch == 2 and kept.iterations == 20
    assert kept.best_weights == first.dir / "best-0002" / "w"
    assert sorted(p.name for p in first.dir.iterdir()) == ["epoch-0002", "run.json"]
    assert capsys.readouterr().err == ""

    (etl / "summary.json").write_text('{"rows": {"train": 11}}')  # the ETL run was rebuilt
    assert progress(lr=1e-2).open(force=False) is None
    err = capsys.readouterr().err
    assert "starting r over (its config changed since the interrupted run: " in err
    assert "etl_summary_sha256" in err and "resolved.learning_rate" in err
    assert sorted(p.name for p in first.dir.iterdir()) == ["run.json"]
