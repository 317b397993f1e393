"""DLRM training throughput (examples/s): ids only vs pretrained vectors, `lookup` vs `join`.

Three cases on the same rows (the first train partitions of an ETL run), side by side:
  ids-only   DLRM on userId/movieId/genres/year, no pretrained vectors (the baseline)
  lookup     + the vectors gathered per batch from embeddings/<m>.npy (one tf.gather)
  join       + the vectors read from the Parquet columns the ETL joined in
Each case runs in its own process (its own TF graph and memory). Steps after `--warmup` are
timed with a Keras callback; the first steps include graph tracing.

Default data: the 25M synthetic set that benchmarks/bench_etl_25m.py makes, and its
`bench-nvt-lookup` / `bench-nvt-join` ETL runs (made here when missing, which takes a while);
flags select smaller data. Run it niced, the machine is shared:

    nice -n 10 .venv/bin/python benchmarks/bench_train.py --data-dir /tmp/mmrec-bench
    nice -n 10 .venv/bin/python benchmarks/bench_train.py --data-dir /tmp/b2 --name synth-2m \
        --users 20000 --movies 8000 --ratings 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = ("ids-only", "lookup", "join")


def ensure_etl(args: argparse.Namespace) -> dict[str, Path]:
    """The lookup and join ETL runs, made with the real ETL stage when missing."""
    sys.path.insert(0, str(REPO))
    from benchmarks.helpers import make_dataset, make_feature_store
    from mmrec.contracts import EtlRunPaths

    runs = {m: args.data_dir / args.name / "etl" / f"bench-nvt-{m}" for m in ("lookup", "join")}
    if all(EtlRunPaths(p).summary.exists() for p in runs.values()):
        return runs
    make_dataset(args.data_dir, args.name, args.users, args.movies, args.ratings)
    make_feature_store(args.data_dir / args.name, args.dim)
    from mmrec.config import EtlConfig
    from workflows.etl.stage import run_etl

    for mode, path in runs.items():
        if not EtlRunPaths(path).summary.exists():
            run_etl(
                EtlConfig(
                    dataset=args.name,
                    data_dir=args.data_dir,
                    run_name=path.name,
                    embeddings=mode,
                )
            )
    return runs


def child(case: str, etl_dir: Path, args: argparse.Namespace) -> dict:
    """Train DLRM for warmup + steps batches in this process; return its throughput."""
    import tensorflow as tf

    from models.data import parquet_files
    from models.dlrm import build_dlrm
    from models.inputs import feature_schema, gather_tables, load_etl, make_loader

    tf.keras.utils.set_random_seed(0)
    run = load_etl(etl_dir)
    modalities = () if case == "ids-only" else run.available
    schema = feature_schema(run, modalities)
    tables = gather_tables(run, modalities, "none", 0)
    files = parquet_files(run.train_dir)[: args.files]
    loader = make_loader(files, schema, tables, args.batch_size, shuffle=True)
    model = build_dlrm(
        schema, embedding_dim=64, top_mlp=(128, 64, 32), dropout=0.0, l2_reg=0.0, bias_l2_reg=0.0
    )
    model.compile(optimizer="adam")
    total = args.warmup + args.steps
    stamps: list[float] = []

    class Clock(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            stamps.append(time.perf_counter())
            if len(stamps) >= total:
                self.model.stop_training = True

    model.fit(loader, epochs=1, verbose=0, callbacks=[Clock()])
    timed = len(stamps) - args.warmup
    if timed < 2:
        raise SystemExit(
            f"only {len(stamps)} batches in {len(files)} file(s): use --files or --steps"
        )
    seconds = stamps[-1] - stamps[args.warmup - 1]
    return {
        "case": case,
        "mode": run.mode if modalities else "-",
        "modalities": {
            m: int(run.matrices[m].shape[1]) if m in run.matrices else None for m in modalities
        },  # fmt: skip
        "batch_size": args.batch_size,
        "timed_steps": timed,
        "examples_per_s": args.batch_size * timed / seconds,
        "ms_per_step": 1000 * seconds / timed,
    }


def main() -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.helpers import add_dataset_args, run_child

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataset_args(p)
    p.add_argument("--lookup-run", type=Path, default=None, help="an existing lookup ETL run dir")
    p.add_argument("--join-run", type=Path, default=None, help="an existing join ETL run dir")
    p.add_argument("--files", type=int, default=1, help="first N train Parquet files")
    p.add_argument("--batch-size", type=int, default=16384)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--etl", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.etl, args)), flush=True)
        return

    if args.lookup_run and args.join_run:
        runs = {"lookup": args.lookup_run, "join": args.join_run}
    else:
        runs = ensure_etl(args)
    results = []
    for case in [c for c in args.cases.split(",") if c]:
        etl = runs["join" if case == "join" else "lookup"]
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--etl", str(etl),
               "--files", str(args.files), "--batch-size", str(args.batch_size),
               "--warmup", str(args.warmup), "--steps", str(args.steps)]  # fmt: skip
        res = run_child(case, cmd)
        if res is None:
            continue
        results.append(res)
        print(json.dumps(res), flush=True)

    base = next((r for r in results if r["case"] == "ids-only"), None)
    print(f"\nDLRM training throughput, batch {args.batch_size}, first {args.files} train file(s);"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'case':<10}{'vectors':<22}{'examples/s':>12}{'ms/step':>10}{'x ids-only':>12}")
    for r in results:
        vec = ",".join(f"{m}:{d}" for m, d in r["modalities"].items()) or "-"
        ratio = f"{r['examples_per_s'] / base['examples_per_s']:.2f}" if base else "-"
        print(f"{r['case']:<10}{vec:<22}{r['examples_per_s']:>12,.0f}{r['ms_per_step']:>10.1f}"
              f"{ratio:>12}")  # fmt: skip


if __name__ == "__main__":
    main()
