"""Data-parallel training with Horovod: what `mmrec train` does differently on N ranks.

Under `horovodrun -np N mmrec train ...` every rank runs the same `train`, on its own share of
the training partitions (Merlin's loader shards by partition), with gradients averaged by
Horovod's `DistributedOptimizer`. What Merlin Models does not do for us, and this module does:

- one writer: rank 0 decides resume or restart and broadcasts it, and is the only rank that
  writes the in-progress state, TensorBoard logs, the published run and the console summary;
- one stopping decision: validation metrics are averaged over the ranks *before* early stopping
  reads them, and rank 0's stop decision is broadcast, so no rank trains on alone and hangs;
- an explicit learning rate: `lr x ranks` (the global batch is `batch x ranks`), with an
  optional linear warm-up; Merlin's own scaling writes a config key TF 2.12's Adam ignores;
- a layout check: ranks that would run different numbers of steps deadlock in the gradient
  allreduce, so the layout is checked up front (a clear error, or a one-step trim);
- whole-split evaluation: loaders that score the model read every partition, not one shard.

With one process (Horovod absent, or present and not launched by horovodrun) everything here is
a no-op, so single-process training is unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from mmrec.errors import MmrecError

# `horovodrun` beside this interpreter (Horovod's launcher, installed with it into the venv)
HOROVODRUN = Path(sys.executable).parent / "horovodrun"


def horovodrun_argv(n: int, timeout_s: int) -> list[str]:
    """`horovodrun -np N -H localhost:N --gloo --gloo-timeout-seconds T`: N ranks on this machine.

    Gloo, no MPI and no SSH. The ranks meet in Gloo's rendezvous after importing TensorFlow: on
    a loaded machine one can come minutes after the other (Horovod's default wait is 30 s), hence
    the explicit timeout. The command to run follows this prefix.
    """
    return [
        str(HOROVODRUN),
        "-np",
        str(n),
        "-H",
        f"localhost:{n}",
        "--gloo",
        "--gloo-timeout-seconds",
        str(timeout_s),
    ]


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among the Horovod ranks (size 1: no Horovod, or not launched)."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def writer(self) -> bool:
        """Only rank 0 touches the file system and the console."""
        return self.rank == 0

    def broadcast(self, value: Any, name: str) -> Any:
        """Rank 0's `value` on every rank (any picklable object)."""
        if not self.active:
            return value
        import horovod.tensorflow as hvd

        return hvd.broadcast_object(value, root_rank=0, name=name)

    def decide(self, fn: Any, name: str) -> Any:
        """`fn()` run on rank 0 alone, its result (or its MmrecError) on every rank.

        For decisions that touch the file system (resume or restart): one rank decides, so the
        ranks cannot disagree, and a failure fails every rank instead of leaving them waiting.
        """
        if not self.active:
            return fn()
        outcome: tuple[str, Any] = ("", None)
        if self.writer:
            try:
                outcome = ("ok", fn())
            except MmrecError as exc:
                outcome = ("error", str(exc))
        kind, value = self.broadcast(outcome, name)
        if kind == "error":
            raise MmrecError(value)
        return value

    def gather(self, value: Any, name: str) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.active:
            return [value]
        import horovod.tensorflow as hvd

        return list(hvd.allgather_object(value, name=name))


@functools.cache
def ranks() -> Ranks:
    """The Horovod ranks of this process; initialises Horovod once when it is installed.

    Merlin Models calls `hvd.init()` itself on import; calling it here first is harmless and lets
    `train` know its rank before it builds anything. `MMREC_NO_HOROVOD=1` ignores Horovod.
    """
    if os.environ.get("MMREC_NO_HOROVOD") == "1":
        return Ranks()
    try:
        import horovod.tensorflow as hvd
    except ImportError:
        return Ranks()
    hvd.init()
    if hvd.size() == 1:
        return Ranks()
    return Ranks(size=hvd.size(), rank=hvd.rank(), local_rank=hvd.local_rank())


def wrap_optimizer(optimizer: Any) -> Any:
    """Horovod's `DistributedOptimizer` around `optimizer` on N ranks (as is on one).

    Wrapped here, Merlin's `compile` leaves it alone (it skips optimizers from horovod) instead of
    rebuilding it through a config key that TF 2.12's Adam drops, so the rate given is the rate
    used.
    """
    if not ranks().active:
        return optimizer
    import horovod.tensorflow.keras as hvd

    return hvd.DistributedOptimizer(optimizer)


def scaling(hp: dict[str, Any], warmup_epochs: int) -> dict[str, Any]:
    """The effective learning rate and global batch of this launch, for config.json.

    Gradients are averaged over the ranks, so one step sees `batch x ranks` rows; the usual
    linear rule scales the rate by the same factor. A warm-up ramps from the single-rank rate to
    the scaled one over `warmup_epochs`, which helps when the scaled rate is large.
    """
    r = ranks()
    return {
        "ranks": r.size,
        "batch_size_per_rank": int(hp["batch_size"]),
        "global_batch_size": int(hp["batch_size"]) * r.size,
        "base_learning_rate": float(hp["learning_rate"]),
        "learning_rate": float(hp["learning_rate"]) * r.size,
        "warmup_epochs": int(warmup_epochs) if r.active else 0,
        "backend": "horovod" if r.active else None,
    }


def whole_split(loader: Any) -> Any:
    """Make a Merlin loader read every partition, on any rank (it shards under Horovod).

    `mm.Loader` takes `global_rank or hvd.rank()`, so rank 0 cannot be asked for by argument;
    the attributes are only read when the loader starts, so setting them afterwards works.
    """
    loader.global_size, loader.global_rank = 1, 0
    return loader


# rows filtered per file (even_steps' `filtered`): the longest rank may skip up to this share of
# its batches each epoch
FILTERED_TRIM = 0.1


def even_steps(
    loader: Any, data_dir: Path, what: str, filtered: str = "", hint: str = ""
) -> int | None:
    """Steps per epoch every rank can run on its shard of `loader` (None with one process).

    Ranks that run different numbers of steps deadlock: the longer one waits forever in the
    gradient allreduce. A difference of one step (shards whose rows differ by a few, as
    `mmrec etl --partitions N` writes when N does not divide the rows) is evened by stopping
    every rank at the shortest; anything else, or a rank with nothing to read, is an error
    that says how to rewrite the data. `what` names the split in messages (train, valid).

    `filtered` names the rows when the loader reads only some of each file (the liked rows for
    `--interactions liked`; the rows outside the DLRM's calibration slice). Equal files do not
    hold equal filtered rows (ratings come sorted by user, and users like at different rates),
    so the shares can differ by more than a step however the ETL was written; up to
    FILTERED_TRIM of the longest share is evened at the shortest too (the longer ranks skip their
    last batches each epoch), and said on stderr. `hint` ends the error with the option that
    reads whole files instead.
    """
    r = ranks()
    if not r.active:
        return None
    try:
        steps = len(loader)
    except IndexError:  # Merlin: fewer partitions than processes
        steps = 0
    partitions = int(loader.dataset.npartitions)
    all_steps = r.gather(int(steps), name=f"mmrec.steps.{what}")
    lo, hi = min(all_steps), max(all_steps)
    gap = 10**9 if what != "train" else (max(1, int(FILTERED_TRIM * hi)) if filtered else 1)
    if lo > 0 and hi - lo <= gap:
        if what == "train" and hi - lo > 1:  # filtered
            say(
                f"Horovod ranks would run {all_steps} {what} steps per epoch on {filtered}; "
                f"each runs {lo} (the longest skips its last {hi - lo} batches, "
                f"{(hi - lo) / hi:.0%} of its share, every epoch)"
            )
        return lo
    files = len(list(Path(data_dir).glob("*.parquet")))
    why = f"; the ranks read only {filtered}, which equal files do not share evenly{hint}"
    why = why if filtered else ""
    raise MmrecError(
        f"{data_dir} has {files} Parquet file(s) ({partitions} loader partition(s)), which "
        f"{r.size} Horovod ranks cannot share evenly: they would run {all_steps} {what} "
        f"steps per epoch, and uneven shares hang Horovod. Rewrite the ETL run with "
        f"`mmrec etl --partitions {r.size}` (or a multiple of {r.size}, with --force or a new "
        f"--run-name), or use a number of ranks that divides the partitions{why}"
    )


def fixed_steps(loader: Any, steps: int | None) -> Any:
    """`loader` cut to `steps` batches per epoch (as is when it already has that many).

    A Keras Sequence that forwards to the Merlin loader: Keras reads `len` batches and then
    calls `on_epoch_end`, which resets the loader, so the surplus batch is never read.
    """
    if steps is None or len(loader) == steps:
        return loader
    import tensorflow as tf

    class FixedSteps(tf.keras.utils.Sequence):
        batch_size = loader.batch_size

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> Any:
            return loader[index]

        def on_epoch_end(self) -> None:
            loader.on_epoch_end()

    return FixedSteps()


def sync_callbacks(hp_scaling: dict[str, Any], steps_per_epoch: int | None) -> tuple[list, ...]:
    """(start, average, stop) Keras callbacks for N ranks (empty lists on one).

    start: broadcast rank 0's initial variables (also after a resume) and the learning-rate
    warm-up. average: the metrics averaged over the ranks; it goes after the callbacks that add
    validation metrics and before early stopping, so early stopping and the history see the
    mean. Merlin appends the same Horovod callbacks after ours (too late for early stopping)
    unless their types are already there. stop: rank 0's stop decision, on every rank.
    """
    r = ranks()
    if not r.active:
        return [], [], []
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    start: list[Any] = [hvd.callbacks.BroadcastGlobalVariablesCallback(0)]
    if hp_scaling["warmup_epochs"] > 0:
        start.append(
            hvd.callbacks.LearningRateWarmupCallback(
                initial_lr=hp_scaling["learning_rate"],
                warmup_epochs=hp_scaling["warmup_epochs"],
                steps_per_epoch=steps_per_epoch,
                verbose=0,
            )
        )

    class SameStop(tf.keras.callbacks.Callback):
        """Every rank stops when rank 0 stops (averaged metrics agree; this makes it certain)."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            stop = r.broadcast(bool(self.model.stop_training), name="mmrec.stop")
            self.model.stop_training = bool(stop)

    return start, [hvd.callbacks.MetricAverageCallback()], [SameStop()]


def weights_digest(model: Any) -> str:
    """A digest of every model weight: equal on all ranks when data parallelism is correct."""
    h = hashlib.sha256()
    for w in model.weights:
        h.update(w.name.encode())
        h.update(w.numpy().tobytes())
    return h.hexdigest()[:16]


def agreement(model: Any, epochs_run: int) -> dict[str, Any] | None:
    """What each rank ended with (epochs, weights), gathered; an error when ranks disagree."""
    r = ranks()
    if not r.active:
        return None
    mine = {"epochs_run": int(epochs_run), "weights": weights_digest(model)}
    everyone = r.gather(mine, name="mmrec.agreement")
    if any(o != everyone[0] for o in everyone):
        raise MmrecError(f"Horovod ranks ended training in different states: {everyone}")
    return {
        "epochs_run_per_rank": [o["epochs_run"] for o in everyone],
        "weights_digest_per_rank": [o["weights"] for o in everyone],
    }


def say(message: str) -> None:
    """One stderr line, from rank 0 only (N copies of every message help nobody)."""
    if ranks().writer:
        print(message, file=sys.stderr)
