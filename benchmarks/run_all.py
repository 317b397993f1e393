"""Runs every benchmark one after another, each in the environment it needs.

Full size by default (25M ratings: expect an hour or more on 2 cores); `--quick` runs each at a
small size to check that the scripts work. Each benchmark prints its own table with a baseline
measured in the same run; this only sequences them and stops at the first failure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
FPY = str(ROOT / ".venv-features" / "bin" / "python")

# (name, interpreter, script, full-size args, quick args)
BENCHMARKS = [
    ("convert", PY, "bench_convert_25m.py", [], ["--ratings", "500000"]),
    (
        "features",
        FPY,
        "bench_features.py",
        [],
        ["--images", "16", "--texts", "32", "--batch-sizes", "1,8"],
    ),
    (
        "etl",
        PY,
        "bench_etl_25m.py",
        [],
        ["--ratings", "500000", "--users", "5000", "--movies", "2000"],
    ),
    (
        "train",
        PY,
        "bench_train.py",
        [],
        ["--ratings", "200000", "--users", "5000", "--movies", "2000"],
    ),
    ("serving", PY, "bench_serving.py", ["--toy"], ["--toy", "--single", "50", "--batches", "10"]),
    # last: every stage of `mmrec run` (hours at full size on 2 cores)
    ("pipeline", PY, "bench_pipeline.py", [], ["--quick", "--modalities", "text"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--only", default="", help="comma list of " + ",".join(b[0] for b in BENCHMARKS)
    )
    args = parser.parse_args()
    only = {x for x in args.only.split(",") if x}
    for name, python, script, full, quick in BENCHMARKS:
        if only and name not in only:
            continue
        cmd = [python, str(ROOT / "benchmarks" / script), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            print(f"benchmark {name} failed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
