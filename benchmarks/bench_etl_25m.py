"""ETL at ml-25m size: `mmrec etl` (lookup and join) beside pandas, Polars and the original series.

Each implementation runs in its own subprocess, so its wall time and peak RSS (getrusage of the
process and of its children) are its own. Run it niced; others share the CPU:

    nice -n 10 .venv/bin/python benchmarks/bench_etl_25m.py --data-dir /tmp/bench

It makes the dataset when missing (`mmrec data synthetic --name synth-25m --users 162541
--movies 62423 --ratings 25000095 --no-posters`) and a fake feature store: one random 64-d
vector per movie (the PCA-reduced size that `join` mode can afford), 10% flagged missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks.baselines` when run as a script

from benchmarks.helpers import (  # noqa: E402  (needs the path above)
    add_dataset_args,
    make_dataset,
    make_feature_store,
    run_child,
)
from workflows.etl.summary import peak_rss_mb  # noqa: E402

RUNS = ("nvt-lookup", "nvt-join", "pandas", "polars", "original-series")


def child(run: str, data_dir: Path, name: str, out: Path, part_size: str) -> dict:
    """Run one implementation in this process; return its measurements."""
    root = data_dir / name
    start = time.perf_counter()
    detail: dict = {}
    if run.startswith("nvt-"):
        from mmrec.runtime import skip_tensorflow

        skip_tensorflow()  # as `mmrec etl` does
        from mmrec.config import EtlConfig
        from workflows.etl.stage import run_etl

        summary = run_etl(
            EtlConfig(
                dataset=name,
                data_dir=data_dir,
                run_name=f"bench-{run}",
                embeddings=run.split("-", 1)[1],
                part_size=part_size,
                force=True,
            )
        )
        rows = summary["rows"]
        detail = summary["timings_s"]
    else:
        module = {
            "pandas": "pandas_etl",
            "polars": "polars_etl",
            "original-series": "original_series",
        }
        mod = __import__(f"benchmarks.baselines.{module[run]}", fromlist=["run"])
        rows = mod.run(root, out)
    wall = time.perf_counter() - start
    peak = peak_rss_mb()
    return {
        "run": run,
        "wall_s": wall,
        "peak_rss_mb": max(peak["self_mb"], peak["children_mb"]),
        "rows": rows,
        "phases": detail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataset_args(parser)
    parser.add_argument("--part-size", default="256MB")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated of {RUNS}")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.data_dir / "_bench_out"
    if args.child:
        shutil.rmtree(out, ignore_errors=True)
        print(
            "RESULT " + json.dumps(child(args.child, args.data_dir, args.name, out, args.part_size))
        )
        shutil.rmtree(out, ignore_errors=True)
        return

    root = make_dataset(args.data_dir, args.name, args.users, args.movies, args.ratings)
    make_feature_store(root, args.dim)
    results = []
    for run in [r for r in args.runs.split(",") if r]:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", run,
               "--data-dir", str(args.data_dir), "--name", args.name, "--part-size", args.part_size]  # fmt: skip
        start = time.perf_counter()
        res = run_child(run, cmd)
        if res is None:
            continue
        res["process_s"] = time.perf_counter() - start
        results.append(res)
        print(json.dumps(res), flush=True)

    by = {r["run"]: r for r in results}
    print(f"\n{args.ratings:,} ratings, {args.movies:,} movies, {args.users:,} users; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'run':<16}{'wall s':>9}{'peak GB':>9}{'x pandas':>10}{'x polars':>10}{'rows':>22}")
    for r in results:
        ratio = {
            b: (f"{r['wall_s'] / by[b]['wall_s']:.2f}" if b in by else "-")
            for b in ("pandas", "polars")
        }
        rows = "/".join(f"{v:,}" for v in r["rows"].values())
        print(f"{r['run']:<16}{r['wall_s']:>9.1f}{r['peak_rss_mb'] / 1024:>9.2f}"
              f"{ratio['pandas']:>10}{ratio['polars']:>10}{rows:>22}")  # fmt: skip
    for r in results:
        if r["phases"]:
            print(f"{r['run']} phases (s): {json.dumps(r['phases'])}")


if __name__ == "__main__":
    main()
