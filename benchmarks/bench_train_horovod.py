"""Data-parallel DLRM training throughput: 1 process against 2 Horovod ranks on the same data.

Three setups over the same ETL run (written with `--partitions 2`), the same DLRM and the same
per-rank batch, one epoch each, steps after `--warmup` timed with a Keras callback:
  1 process      all of train in one process (the baseline)
  2 independent  two plain processes at once, one partition each, no communication: what two
                 ranks cost in CPU contention alone
  2 ranks        `horovodrun -np 2 --gloo`, one partition each, gradients averaged by Horovod's
                 DistributedOptimizer (Merlin's fit adds the broadcast and metric callbacks)
Communication per step = step time of "2 ranks" minus that of "2 independent" (same processes,
same shards, same contention; only the allreduce differs). On 2 shared cores expect no speed-up:
two ranks split the same two cores.

    nice -n 10 .venv/bin/python benchmarks/bench_train_horovod.py --data-dir /tmp/mmrec-hvd-bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ensure_etl(args: argparse.Namespace) -> Path:
    """A synthetic dataset without posters and its ETL run in two equal partitions."""
    sys.path.insert(0, str(REPO))
    from mmrec.config import EtlConfig, SyntheticConfig
    from workflows.data.synthetic import generate_synthetic
    from workflows.etl.stage import run_etl

    etl = args.data_dir / "bench" / "etl" / "hvd-2"
    if (etl / "summary.json").exists():
        return etl
    generate_synthetic(
        SyntheticConfig(
            data_dir=args.data_dir,
            name="bench",
            users=args.users,
            movies=args.movies,
            ratings=args.ratings,
            posters=False,
        )
    )
    run_etl(
        EtlConfig(
            dataset="bench",
            data_dir=args.data_dir,
            run_name=etl.name,
            embeddings="none",
            partitions=2,
        )
    )
    return etl


def child(etl_dir: Path, files: str, args: argparse.Namespace) -> dict:
    """Train DLRM for one epoch in this process; time its steps.

    `files`: all (every train file), shard (Merlin's share of this Horovod rank) or an index.
    """
    import numpy as np
    import tensorflow as tf

    from models.data import parquet_files
    from models.distributed import ranks, wrap_optimizer
    from models.dlrm import build_dlrm
    from models.inputs import feature_schema, load_etl, make_loader

    r = ranks()
    tf.keras.utils.set_random_seed(0)
    run = load_etl(etl_dir)
    schema = feature_schema(run, ())
    if files in ("all", "shard"):
        source: Path | list[Path] = run.train_dir
    else:
        source = [parquet_files(run.train_dir)[int(files)]]
    loader = make_loader(source, schema, {}, args.batch_size, shuffle=True, seed=0)
    model = build_dlrm(
        schema, embedding_dim=64, top_mlp=(128, 64, 32), dropout=0.0, l2_reg=0.0, bias_l2_reg=0.0
    )
    model.compile(optimizer=wrap_optimizer(tf.keras.optimizers.Adam(1e-3)))
    stamps: list[float] = []

    class Clock(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            stamps.append(time.perf_counter())

    model.fit(loader, epochs=1, callbacks=[Clock()], verbose=0)
    timed = np.diff(stamps[args.warmup :])
    gradient_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.trainable_variables)
    mine = {
        "allreduce_ms": allreduce_ms(model) if r.active else None,
        "steps_timed": int(timed.size),
        "step_ms": float(np.median(timed) * 1e3),
        "examples_per_s": float(args.batch_size / np.median(timed)),
        "dense_gradient_mb": gradient_bytes / 2**20,
    }
    return {"ranks": r.size, "per_rank": r.gather(mine, name="bench")}


def allreduce_ms(model, reps: int = 20) -> float:
    """Median time of one Horovod allreduce of a dense copy of every trainable weight.

    What a step's gradient exchange costs at most: Horovod sends embedding gradients as sparse
    slices (an allgather of the rows a batch touched), which is less when batches are small
    against the tables.
    """
    import horovod.tensorflow as hvd
    import numpy as np
    import tensorflow as tf

    grads = [tf.ones_like(v) for v in model.trainable_variables]
    hvd.grouped_allreduce(grads)  # warm-up: negotiation, buffers
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = hvd.grouped_allreduce(grads)
        _ = [o.numpy() for o in out]
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def launch(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)


def result_of(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed (rc {proc.returncode}):\n{out[-3000:]}")
    line = [x for x in out.splitlines() if "RESULT {" in x][-1]  # horovodrun prefixes lines
    return json.loads(line.split("RESULT ", 1)[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/mmrec-hvd-bench"))
    p.add_argument("--users", type=int, default=2_000)
    p.add_argument("--movies", type=int, default=1_000)
    p.add_argument("--ratings", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=5, help="steps not timed (graph tracing)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args()
    etl = ensure_etl(args)
    if args.child is not None:
        res = child(etl, args.child, args)
        from models.distributed import ranks

        if ranks().writer:
            print("RESULT " + json.dumps(res), flush=True)
        return
    from models.distributed import HOROVODRUN, horovodrun_argv  # REPO on sys.path: ensure_etl

    if not HOROVODRUN.exists():
        raise SystemExit("horovod is not installed: `make setup-horovod` builds it")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMREC_NO_PROGRESS": "1"}
    me = [sys.executable, str(Path(__file__).resolve()), "--data-dir", str(args.data_dir)]
    me += ["--batch-size", str(args.batch_size), "--warmup", str(args.warmup)]
    results = {"one process": result_of(launch([*me, "--child", "all"], env))}
    pair = [launch([*me, "--child", str(i)], env) for i in (0, 1)]
    both = [result_of(q) for q in pair]
    results["two independent"] = {"ranks": 2, "per_rank": [b["per_rank"][0] for b in both]}
    hvd = [*horovodrun_argv(2, 600), *me, "--child", "shard"]
    results["two ranks (horovod)"] = result_of(launch(hvd, env))
    rows = []
    for name, res in results.items():
        per = res["per_rank"]
        step = sum(x["step_ms"] for x in per) / len(per)
        rows.append((name, len(per), step, sum(x["examples_per_s"] for x in per)))
    comm = rows[2][2] - rows[1][2]
    measured = [x["allreduce_ms"] for x in results["two ranks (horovod)"]["per_rank"]]
    print(
        f"\nDLRM, batch {args.batch_size} per rank, {per[0]['dense_gradient_mb']:.1f} MB of weights"
    )
    print("| setup | processes | step (ms, median) | examples/s (all processes) |")
    print("| --- | --- | --- | --- |")
    for name, n, step, eps in rows:
        print(f"| {name} | {n} | {step:.1f} | {eps:,.0f} |")
    print(f"\ncommunication per step (2 ranks minus 2 independent): {comm:.1f} ms")
    print(f"one allreduce of all weights, dense, per rank (ms, median): {measured}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {"results": results, "communication_ms": comm, "allreduce_ms": measured}, indent=1
            )
        )


if __name__ == "__main__":
    main()
