"""`mmrec train` data-parallel under a real `horovodrun -np 2 --gloo` on CPU ranks.

Two real processes train on a tiny ETL run written as two equal partitions (`--partitions 2`);
the checks are those of docs/scaling.md: the run completes, only rank 0 changes files, the
published metrics are a whole-split evaluation of the published model (redone here in a
process where Horovod cannot be imported), both ranks stop at the same epoch with the same
weights, a layout the ranks cannot share evenly fails at once instead of hanging, and a run
killed with SIGKILL resumes from its last epoch under the same command. The two-tower model
gets the same checks on its retrieval metrics, whose validation is a callback, not Keras'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from builders import write_dataset

from mmrec.config import EtlConfig
from mmrec.contracts import ITEM, LABEL, USER
from models.distributed import HOROVODRUN, horovodrun_argv
from models.resume import progress_dir_of

REPO = Path(__file__).resolve().parents[1]
needs_horovod = pytest.mark.skipif(
    importlib.util.find_spec("horovod") is None or not HOROVODRUN.exists(),
    reason="horovod is not installed in this environment: `make setup-horovod` builds it "
    "(CI does)",
)
ETL = "parts"  # two equal partitions per split
RUN = f"{ETL}.dlrm.text.none"
COMMON = ["--dataset", "tiny", "--etl-run", ETL, "--modalities", "text"]
COMMON += ["--batch-size", "64", "--lr", "0.03", "--mixed-precision", "off"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from workflows.etl.stage import run_etl

    data_dir = tmp_path_factory.mktemp("hvd")
    write_dataset(data_dir / "tiny")
    base = {"dataset": "tiny", "data_dir": data_dir, "split": "cold-items", "seed": 1}
    run_etl(EtlConfig(**base, cold_fraction=0.15, run_name=ETL, partitions=2))
    run_etl(EtlConfig(**base, cold_fraction=0.15, run_name="one-file"))
    run_etl(EtlConfig(**base, cold_fraction=0.15, run_name="three", partitions=3))
    return data_dir


def test_partitions_split_rows_evenly_in_order(tiny: Path) -> None:
    """--partitions rewrites each split as N files of equal rows, same rows in the same order."""
    etl = tiny / "tiny" / "etl"
    for split in ("train", "valid"):
        one = sorted((etl / "one-file" / split).glob("*.parquet"))
        for name, n in ((ETL, 2), ("three", 3)):
            files = sorted((etl / name / split).glob("*.parquet"))
            assert [f.name for f in files] == [f"part_{i}.parquet" for i in range(n)]
            rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
            assert max(rows) - min(rows) <= 1, rows
            got = pq.ParquetDataset([str(f) for f in files]).read()
            want = pq.ParquetDataset([str(f) for f in one]).read()
            assert got.num_rows == want.num_rows and got.equals(want)
            listed = (etl / name / split / "_file_list.txt").read_text().split()
            assert listed[0] == str(n) and len(listed) == n + 1
            assert (
                json.loads((etl / name / "summary.json").read_text())["compute"]["file_rows"][split]
                == rows
            )
    from models.inputs import load_etl

    assert load_etl(etl / ETL).schema.column_names == load_etl(etl / "one-file").schema.column_names


def test_fixed_steps_runs_the_same_cut_every_epoch(tiny: Path) -> None:
    """The one-step evening: Keras runs exactly `steps` batches per epoch, epoch after epoch."""
    import tensorflow as tf

    from models.distributed import fixed_steps
    from models.dlrm import build_dlrm
    from models.inputs import feature_schema, load_etl, make_loader

    run = load_etl(tiny / "tiny" / "etl" / ETL)
    schema = feature_schema(run, ())
    loader = make_loader(run.train_dir, schema, {}, 256, shuffle=True, seed=0)
    full = len(loader)
    assert full >= 3
    model = build_dlrm(
        schema, embedding_dim=4, top_mlp=(8,), dropout=0.0, l2_reg=0.0, bias_l2_reg=0.0
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    assert fixed_steps(loader, full) is loader
    history = model.fit(fixed_steps(loader, full - 1), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert int(model.optimizer.iterations.numpy()) == 3 * (full - 1)


def test_even_steps_trims_a_step_and_the_liked_rows_a_little_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The rule that keeps N ranks in step, with the ranks' step counts given (no Horovod)."""
    import models.distributed as dist
    from mmrec.errors import MmrecError

    @dataclasses.dataclass(frozen=True)
    class Given(dist.Ranks):
        steps: tuple[int, ...] = ()

        def gather(self, value: object, name: str) -> list:
            return list(self.steps)

    class Loader:
        dataset = types.SimpleNamespace(npartitions=2)

        def __len__(self) -> int:
            return 0

    def even(steps: tuple[int, ...], filtered: bool) -> int | None:
        monkeypatch.setattr(dist, "ranks", lambda: Given(size=2, steps=steps))
        rows = ("the liked rows", ": --interactions all") if filtered else ("", "")
        return dist.even_steps(Loader(), tmp_path, "train", *rows)

    assert even((8, 7), filtered=False) == 7
    assert even((40, 37), filtered=True) == 37  # within 10% of the longest share
    said = capsys.readouterr().err
    assert "the longest skips its last 3 batches" in said and "on the liked rows" in said
    for steps, filtered in (((8, 6), False), ((40, 35), True), ((0, 5), True)):
        with pytest.raises(MmrecError, match="cannot share evenly") as err:
            even(steps, filtered)
        assert ("--interactions all" in str(err.value)) == filtered
    monkeypatch.setattr(dist, "ranks", lambda: dist.Ranks())
    assert dist.even_steps(Loader(), tmp_path, "train") is None  # one process


def horovodrun(
    data_dir: Path, log_dir: Path, *args: str, model: str = "dlrm", popen: bool = False
) -> subprocess.CompletedProcess | subprocess.Popen:
    """`horovodrun -np 2 -H localhost:2 --gloo python -m tests.hvd_audit ... train ...`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMREC_NO_PROGRESS": "1"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = horovodrun_argv(2, 600)  # a 600 s rendezvous: the ranks start slowly on a busy machine
    cmd += [sys.executable, "-m", "tests.hvd_audit", str(data_dir), str(log_dir), "--"]
    cmd += ["train", "--data-dir", str(data_dir), *COMMON, "--model", model, *args]
    if popen:
        return subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    return subprocess.run(
        cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )


def audit_logs(log_dir: Path) -> dict[str, dict]:
    return {
        json.loads(f.read_text())["rank"]: json.loads(f.read_text())
        for f in log_dir.glob("rank-*.json")
    }


def single_process_evaluation(run_dir: Path, etl_dir: Path) -> dict:
    """models.evaluate.evaluate_run in a fresh process that cannot import horovod."""
    code = (
        "import json, sys\n"
        "sys.modules['horovod'] = None\n"  # any `import horovod` now raises ImportError
        "from pathlib import Path\n"
        "from models.evaluate import evaluate_run\n"
        "from models.data import Interactions\n"
        "from models.inputs import load_etl\n"
        f"etl = load_etl(Path({str(etl_dir)!r}))\n"
        "both = (Interactions.read(etl.train_dir), Interactions.read(etl.valid_dir))\n"
        f"out, _ = evaluate_run(Path({str(run_dir)!r}), etl, both)\n"
        "assert not any(m.startswith('horovod') and sys.modules[m] for m in sys.modules)\n"
        "print('RESULT ' + json.dumps(out['metrics']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMREC_NO_PROGRESS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@needs_horovod
def test_two_ranks_train_publish_once_and_match_a_single_process_evaluation(
    tiny: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "audit"
    # patience 1 with a high rate: early stopping ends the run before the epoch budget
    done = horovodrun(tiny, logs, "--epochs", "12", "--patience", "1")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run_dir = tiny / "tiny" / "runs" / RUN
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())

    # the same stopping epoch and the same final weights on both ranks
    dist = summary["distributed"]
    assert dist["ranks"] == 2
    assert dist["epochs_run_per_rank"] == [summary["epochs_run"]] * 2
    assert len(set(dist["weights_digest_per_rank"])) == 1
    assert summary["epochs_run"] < 12, "early stopping should have ended this run"
    assert len(history["loss"]) == summary["epochs_run"]

    # the scaled rate and global batch, recorded
    assert config["distributed"]["learning_rate"] == pytest.approx(0.06)
    assert config["distributed"]["global_batch_size"] == 128
    assert config["resolved"]["learning_rate"] == pytest.approx(0.03)

    # only rank 0 changed files (Python-level changes, and TensorBoard's by pid)
    audit = audit_logs(logs)
    assert set(audit) == {"0", "1"}
    assert audit["1"]["changes"] == []
    assert any(RUN in p for _e, p in audit["0"]["changes"])
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    pids = {int(re.search(r"\.(\d+)\.\d+\.v2$", e.name).group(1)) for e in events}
    assert pids == {audit["0"]["pid"]}
    assert not progress_dir_of(run_dir).exists()
    # rank 0 alone printed the summary
    assert done.stdout.count(f"{RUN}: done ->") == 1

    # the published metrics are the whole validation split's, as a plain process scores them
    etl_dir = tiny / "tiny" / "etl" / ETL
    valid_rows = sum(
        pq.ParquetFile(f).metadata.num_rows for f in (etl_dir / "valid").glob("*.parquet")
    )
    published = summary["metrics"]["ranking"]
    assert published["all"]["rows"] == valid_rows
    again = single_process_evaluation(run_dir, etl_dir)["ranking"]
    for part in ("all", "cold", "warm"):
        assert again[part]["rows"] == published[part]["rows"]
        assert again[part]["auc"] == pytest.approx(published[part]["auc"], abs=1e-6)
        assert again[part]["logloss"] == pytest.approx(published[part]["logloss"], abs=1e-6)


@needs_horovod
def test_two_tower_on_two_ranks_publishes_once_and_matches_a_single_process_evaluation(
    tiny: Path, tmp_path: Path
) -> None:
    """Two-tower under Horovod: its validation is a callback (recall@10 over all movies), not
    Keras' validation loader, and it publishes three SavedModels and the item popularity."""
    logs = tmp_path / "audit"
    run_name = f"{ETL}.two-tower.text.none"
    done = horovodrun(tiny, logs, "--epochs", "3", "--patience", "3", model="two-tower")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run_dir = tiny / "tiny" / "runs" / run_name
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())

    # the same epochs and byte-identical final weights on both ranks
    dist = summary["distributed"]
    assert dist["ranks"] == 2
    assert summary["epochs_run"] == 3
    assert dist["epochs_run_per_rank"] == [3, 3]
    assert len(set(dist["weights_digest_per_rank"])) == 1
    assert summary["monitor"] == "val_recall@10"
    assert len(history["val_recall@10"]) == 3
    assert summary["best_epoch"] == int(np.argmax(history["val_recall@10"])) + 1

    # only rank 0 changed files; it alone printed the summary
    audit = audit_logs(logs)
    assert set(audit) == {"0", "1"}
    assert audit["1"]["changes"] == []
    assert any(run_name in p for _e, p in audit["0"]["changes"])
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert {int(re.search(r"\.(\d+)\.\d+\.v2$", e.name).group(1)) for e in events} == {
        audit["0"]["pid"]
    }
    assert not progress_dir_of(run_dir).exists()
    assert done.stdout.count(f"{run_name}: done ->") == 1
    for saved in ("model", "query_tower", "item_tower"):
        assert (run_dir / saved / "saved_model.pb").exists(), saved

    # validation ran on the whole split on every rank: with every valid user sampled (tiny has
    # fewer than --eval-users), the rank-averaged recall@10 of the best epoch is the published one
    published = summary["metrics"]["retrieval"]
    best_recall = history["val_recall@10"][summary["best_epoch"] - 1]
    assert best_recall == pytest.approx(published["all"]["recall@10"], abs=1e-6)

    # the logQ correction counts the liked rows of all of train, not one rank's file
    etl_dir = tiny / "tiny" / "etl" / ETL
    saved = np.load(run_dir / "item_log_popularity.npy")

    def liked(files: list[Path], column: str) -> np.ndarray:
        t = pq.ParquetDataset([str(f) for f in files]).read(columns=[column, LABEL])
        return t[column].to_numpy()[t[LABEL].to_numpy() == 1]

    def log_popularity(files: list[Path]) -> np.ndarray:
        return np.log1p(np.bincount(liked(files, ITEM), minlength=saved.size)).astype(np.float32)

    train_files = sorted((etl_dir / "train").glob("*.parquet"))
    assert len(train_files) == 2
    np.testing.assert_allclose(saved, log_popularity(train_files), atol=1e-6)
    assert not np.allclose(saved, log_popularity(train_files[:1]))

    # the published retrieval metrics are the whole split's: a process without Horovod reloads
    # the saved towers (query_tower/, item_tower/) and the saved popularity, and scores the same
    liked_users = np.unique(liked(sorted((etl_dir / "valid").glob("*.parquet")), USER))
    assert published["all"]["users"] == liked_users.size  # every valid user, not one shard's
    again = single_process_evaluation(run_dir, etl_dir)["retrieval"]
    assert {"all", "cold"} <= set(published) and set(again) == set(published)
    for part in ("all", "cold"):
        assert again[part]["users"] == published[part]["users"] > 0
        for metric in ("recall@10", "recall@50", "ndcg@10", "mrr"):
            assert again[part][metric] == pytest.approx(published[part][metric], abs=1e-6), (
                part,
                metric,
            )


@needs_horovod
def test_a_layout_the_ranks_cannot_share_fails_instead_of_hanging(
    tiny: Path, tmp_path: Path
) -> None:
    """3 files on 2 ranks (one rank would run twice the steps of the other) and 1 file.

    A hang would end in horovodrun's subprocess timeout (a failure); the error comes before the
    first step, in start-up time (about a minute on 2 quiet cores).
    """
    for etl in ("three", "one-file"):
        done = horovodrun(tiny, tmp_path / etl, "--etl-run", etl, "--epochs", "2")
        out = done.stdout + done.stderr
        assert done.returncode != 0, out[-3000:]
        assert "Horovod ranks cannot share evenly" in out, out[-3000:]
        assert "--partitions 2" in out
        assert not (tiny / "tiny" / "runs" / f"{etl}.dlrm.text.none" / "summary.json").exists()


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL horovodrun and every process under it (the ranks run in their own sessions)."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(tree, timeout=30)


@needs_horovod
def test_a_killed_two_rank_run_resumes_under_the_same_command(tiny: Path, tmp_path: Path) -> None:
    epochs, kill_at = 5, 2
    args = ["--epochs", str(epochs), "--patience", str(epochs), "--run-name", "killed"]
    run_dir = tiny / "tiny" / "runs" / "killed"
    progress = progress_dir_of(run_dir)
    proc = horovodrun(tiny, tmp_path / "first", *args, popen=True)
    deadline = time.monotonic() + 600
    try:
        while (
            len(list(progress.glob("epoch-[0-9][0-9][0-9][0-9]"))) == 0
            or max(int(p.name[6:]) for p in progress.glob("epoch-[0-9][0-9][0-9][0-9]")) < kill_at
        ):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no epoch saved within 600 s"
            time.sleep(0.05)
    finally:
        kill_tree(proc)
    assert not (run_dir / "summary.json").exists()
    killed = max(int(p.name[6:]) for p in progress.glob("epoch-[0-9][0-9][0-9][0-9]"))
    state = json.loads((progress / f"epoch-{killed:04d}" / "state.json").read_text())

    done = horovodrun(tiny, tmp_path / "second", *args)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert out.count(f"resuming killed at epoch {killed + 1} of {epochs}") == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    assert summary["resumed_from_epoch"] == killed
    assert summary["epochs_run"] == epochs
    assert summary["distributed"]["epochs_run_per_rank"] == [epochs, epochs]
    assert len(set(summary["distributed"]["weights_digest_per_rank"])) == 1
    steps = state["iterations"] // killed
    assert summary["optimizer_iterations"] == steps * epochs  # Adam went on from its step
    for key, values in history.items():
        assert values[:killed] == pytest.approx(state["history"][key], abs=0), key
    assert summary["best_epoch"] == int(np.argmax(history["val_auc"])) + 1
    assert audit_logs(tmp_path / "second")["1"]["changes"] == []
    assert not progress.exists()
    shutil.rmtree(run_dir)
