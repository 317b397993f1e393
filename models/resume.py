"""Resumable training: the in-progress folder that lets `mmrec train` survive an interruption.

`train` publishes its run directory atomically at the end, so everything a dying process had in
memory used to be lost. This module keeps a persistent sibling folder,
`<runs>/.<run-name>.in-progress/`, that holds after every finished epoch:

  run.json              what the state belongs to: the fingerprint of the config, the resolved
                        hyper-parameters and the ETL run's summary.json (a different config
                        must not continue someone else's weights)
  epoch-NNNN/           one finished epoch, written as a whole folder and renamed into place:
    ckpt.*              tf.train.Checkpoint of the model AND its optimizer (Adam's moments and
                        iterations), so the learning-rate schedule and moments continue
    state.json          the epoch count, Keras history so far, early-stopping counters
  best-NNNN/            the best epoch's weights (Keras save_weights), because EarlyStopping's
                        in-memory copy dies with the process; becomes the run's checkpoints/
  tensorboard/          logs, appended to across restarts

Only the newest epoch folder and the best folder it names are kept. Each folder is complete
or absent (atomic rename, fsynced), so a SIGKILL or power loss at any moment leaves either the
previous epoch or the new one. `train` removes the folder once the run is published.
Under Horovod only rank 0 opens, writes and prunes it; the other ranks get rank 0's resume
decision (the EpochState) by broadcast and only read the checkpoint it names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from mmrec.contracts import EtlRunPaths
from mmrec.errors import MmrecError
from mmrec.io import atomic_dir, file_digest, read_json, write_json_atomic

FORMAT = 1  # bump when the folder layout changes, so old state starts over instead of failing
SUFFIX = ".in-progress"
STATE = "state.json"
RUN = "run.json"
CKPT = "ckpt"
BEST = "best.weights"


def progress_dir_of(run_dir: Path) -> Path:
    """The in-progress folder: hidden (runs/ listings skip it) and named after its run."""
    return run_dir.with_name(f".{run_dir.name}{SUFFIX}")


def identity_of(
    cfg: Any, hp: dict[str, Any], etl_path: Path, mixed_precision: bool, ranks: int = 1
) -> dict:
    """Everything that decides what the saved weights mean; any change must start over.

    `force` is left out (it is how the user asks to start over, not part of the model). The ETL
    run is identified by the digest of its summary.json, which changes when it is rebuilt.
    Mixed precision changes the optimizer's variables (loss scaling), so it is part of it too,
    and so is the number of Horovod ranks (it scales the global batch and the learning rate).
    """
    config = {k: jsonable(v) for k, v in dataclasses.asdict(cfg).items() if k != "force"}
    summary = EtlRunPaths(etl_path).summary
    return {
        "format": FORMAT,
        "config": config,
        "resolved": {k: jsonable(v) for k, v in hp.items()},
        "etl_path": str(etl_path),
        "etl_summary_sha256": file_digest(summary),
        "mixed_precision": bool(mixed_precision),
        "ranks": int(ranks),
    }


def fingerprint_of(identity: dict[str, Any]) -> str:
    """A short stable digest of `identity_of`: what run.json and every state.json carry."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class EpochState:
    """What the newest epoch folder holds, read back for a restart."""

    epoch: int  # epochs finished (Keras' initial_epoch for the restart)
    history: dict[str, list[float]]
    best: float | None  # best monitored value so far (None: the monitor never reported)
    best_epoch: int | None  # 0-based epoch of `best`, like EarlyStopping.best_epoch
    wait: int  # EarlyStopping.wait: epochs counted since the last improvement
    stopped: bool  # early stopping ended the fit after this epoch
    iterations: int  # optimizer steps so far (a check that the optimizer was restored)
    checkpoint: Path  # tf.train.Checkpoint prefix of model + optimizer
    best_weights: Path | None  # save_weights prefix of the best epoch


class Progress:
    """The in-progress folder of one run: decide resume or restart, save epochs, clean up."""

    def __init__(self, run_dir: Path, identity: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.dir = progress_dir_of(run_dir)
        self.identity = identity
        self.fingerprint = fingerprint_of(identity)

    @property
    def tensorboard_dir(self) -> Path:
        return self.dir / "tensorboard"

    def open(self, force: bool) -> EpochState | None:
        """Keep matching state and return its newest epoch; wipe state that must not be reused.

        A different fingerprint or --force starts over and says so on stderr (silently
        continuing or silently discarding hours of training would both surprise the user).
        State with no finished epoch is dropped quietly: there is nothing to resume.
        """
        state = None
        if self.dir.exists():
            reason = "--force" if force else self._mismatch()
            if reason:
                print(f"starting {self.run_dir.name} over ({reason})", file=sys.stderr)
            else:
                state = self.latest()
            if state is None:
                shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / RUN).exists():
            write_json_atomic(self.dir / RUN, {"fingerprint": self.fingerprint, **self.identity})
            _fsync_dir(self.dir)
        self._prune(state)
        return state

    def _mismatch(self) -> str | None:
        """Why the state on disk belongs to another config (None when it is this one's)."""
        f = self.dir / RUN
        if not f.exists():
            return None  # killed before run.json: no epoch can be there either
        doc = self._read_json(f)
        if doc.get("fingerprint") == self.fingerprint:
            return None
        changed = ", ".join(_changed_keys(doc, self.identity)) or "fingerprint"
        return f"its config changed since the interrupted run: {changed}"

    def latest(self) -> EpochState | None:
        """The newest complete epoch folder, checked against this run's fingerprint."""
        epochs = sorted(self.dir.glob("epoch-[0-9][0-9][0-9][0-9]"))
        if not epochs:
            return None
        f = epochs[-1] / STATE
        doc = self._read_json(f)
        try:
            if doc["fingerprint"] != self.fingerprint:
                raise MmrecError(
                    f"{f} belongs to another config than {self.dir / RUN}; "
                    "rerun with --force to start over"
                )
            best = doc["best_weights"]
            return EpochState(
                epoch=int(doc["epoch"]),
                history={k: [float(v) for v in vals] for k, vals in doc["history"].items()},
                best=None if doc["best"] is None else float(doc["best"]),
                best_epoch=None if doc["best_epoch"] is None else int(doc["best_epoch"]),
                wait=int(doc["wait"]),
                stopped=bool(doc["stopped"]),
                iterations=int(doc["iterations"]),
                checkpoint=epochs[-1] / CKPT,
                best_weights=None if best is None else self.dir / best,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MmrecError(
                f"in-progress training state {f} is corrupt ({type(exc).__name__}: {exc}); "
                "rerun with --force to start over"
            ) from exc

    def save_best(self, model: Any, epoch: int) -> str:
        """Write the weights of a new best epoch (1-based `epoch`); returns their relative prefix."""
        name = f"best-{epoch:04d}"
        with atomic_dir(self.dir / name) as tmp:
            model.save_weights(str(tmp / BEST))
            _fsync_tree(tmp)
        _fsync_dir(self.dir)
        return f"{name}/{BEST}"

    def save_epoch(self, checkpoint: Any, state: dict[str, Any]) -> None:
        """Write one finished epoch (model, optimizer, counters) as one folder, then prune."""
        epoch = int(state["epoch"])
        with atomic_dir(self.dir / f"epoch-{epoch:04d}") as tmp:
            checkpoint.write(str(tmp / CKPT))
            write_json_atomic(tmp / STATE, {"fingerprint": self.fingerprint, **state})
            _fsync_tree(tmp)
        _fsync_dir(self.dir)
        self._prune(self.latest())

    def restore(self, checkpoint: Any, state: EpochState) -> None:
        """Load model and optimizer from the newest epoch; every saved value must find its home.

        The caller builds the model and the optimizer's slots first: Keras creates them lazily,
        and a value with nowhere to go would be silently dropped (a fresh Adam behind a restored
        model). `assert_consumed` turns that into an error.
        """
        try:
            checkpoint.read(str(state.checkpoint)).assert_consumed()
        except Exception as exc:  # tf.errors.* (unreadable, truncated) or AssertionError
            raise MmrecError(
                f"in-progress checkpoint {state.checkpoint} cannot be restored "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}); "
                "rerun with --force to start over"
            ) from exc

    def load_best(self, model: Any, best: Path) -> None:
        """Put the best epoch's weights (from disk, they survive restarts) into `model`."""
        try:
            model.load_weights(str(best))
        except Exception as exc:
            raise MmrecError(
                f"best weights {best} cannot be loaded ({type(exc).__name__}); "
                "rerun with --force to start over"
            ) from exc

    def remove(self) -> None:
        """Drop the folder once the run is published: the run dir now has everything."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _prune(self, state: EpochState | None) -> None:
        """Keep only the newest epoch, the best it names and the logs; drop temp leftovers."""
        keep = {RUN, "tensorboard"}
        if state is not None:
            keep.add(state.checkpoint.parent.name)
            if state.best_weights is not None:
                keep.add(state.best_weights.parent.name)
        for p in self.dir.iterdir():
            if p.name not in keep:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    @staticmethod
    def _read_json(f: Path) -> dict[str, Any]:
        try:
            doc = read_json(f)
        except (OSError, ValueError) as exc:
            raise MmrecError(
                f"in-progress training state {f} is unreadable ({exc}); "
                "rerun with --force to start over"
            ) from exc
        if not isinstance(doc, dict):
            raise MmrecError(
                f"in-progress training state {f} is not a JSON object; "
                "rerun with --force to start over"
            )
        return doc


def make_early_stopping(
    progress: Progress,
    checkpoint: Any,
    monitor: str,
    patience: int,
    state: EpochState | None,
    write: bool = True,
) -> Any:
    """EarlyStopping whose counters, history and best weights are saved after every epoch.

    It subclasses Keras' EarlyStopping so the stopping rule stays Keras' own; what it adds is
    persistence (the fit can die at any time) and a restart from saved counters, because
    EarlyStopping.on_train_begin would otherwise forget the best value seen before the crash.
    Best weights go to disk instead of memory (restore_best_weights=False); `train` loads them.
    It must come after callbacks that add the monitored value to the logs. `write=False` (Horovod
    ranks other than 0) keeps the same counters and history but writes nothing.
    """
    import tensorflow as tf

    class ResumableEarlyStopping(tf.keras.callbacks.EarlyStopping):
        def __init__(self) -> None:
            super().__init__(monitor=monitor, mode="max", patience=patience)
            self.history = {k: list(v) for k, v in state.history.items()} if state else {}
            self.best_weights_path = state.best_weights if state else None

        def on_train_begin(self, logs: dict | None = None) -> None:
            super().on_train_begin(logs)
            if state is not None and state.best is not None:
                self.best, self.best_epoch, self.wait = state.best, state.best_epoch, state.wait

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            before = self.best
            super().on_epoch_end(epoch, logs)
            for k, v in (logs or {}).items():
                self.history.setdefault(k, []).append(float(v))
            if not write:
                return
            if self.best != before:  # improved: Keras set best_epoch = epoch
                rel = progress.save_best(self.model, epoch + 1)
                self.best_weights_path = progress.dir / rel
            progress.save_epoch(checkpoint, self.snapshot(epoch + 1))

        def snapshot(self, epochs_done: int) -> dict[str, Any]:
            improved = bool(self.best_weights_path)
            best_rel = str(self.best_weights_path.relative_to(progress.dir)) if improved else None
            return {
                "epoch": epochs_done,
                "history": self.history,
                "best": float(self.best) if improved else None,
                "best_epoch": int(self.best_epoch) if improved else None,
                "wait": int(self.wait),
                "stopped": bool(self.model.stop_training),
                "iterations": int(self.model.optimizer.iterations.numpy()),
                "best_weights": best_rel,
            }

    return ResumableEarlyStopping()


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the settings that differ, one level deep ("config.epochs"), for the message."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key == "fingerprint" or a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(key)
    return out


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder of the in-progress state into the run being published (kept until then)."""
    if src.exists():
        shutil.copytree(src, dst)


def _fsync_tree(folder: Path) -> None:
    """Flush a folder's files before it is renamed into place, so power loss cannot leave a
    renamed folder whose files are empty (rename is ordered before data on some filesystems)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry (a rename) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def jsonable(v: Any) -> Any:
    """JSON-stable form of a config value (tuples and lists compare equal after a reload)."""
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [jsonable(x) for x in v]
    return v
