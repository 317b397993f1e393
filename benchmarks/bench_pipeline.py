"""`mmrec run` at a chosen size, stage by stage: wall time, throughput and peak memory of each.

Each planned step (mmrec.pipeline.plan: data, features, etl, six trainings, evaluate, report,
export) runs as its own `mmrec` process, exactly as `mmrec run` starts it; the peak resident
memory is that of the step's whole process tree (the features stage re-executes itself in its
own environment; the ETL may start Dask workers), sampled every 0.2 s. Beside the ETL, in the
same run and on the same ratings, the Polars streaming baseline (benchmarks/baselines) does the
same split and encodings, so the table gives the ETL's time as a ratio to it.

Full size by default (ML-25M's shape: 162,541 users, 62,423 movies, 25,000,095 ratings; expect
hours on 2 cores: at 2M ratings the run took 40 minutes, most of it in the trainings); `--quick` checks the script in a
few minutes. Text only by default at full size (synthetic posters through EfficientNet-Lite0 run
at a few images per second here); `--modalities text,image` embeds posters too. Run it niced:

    nice -n 10 .venv/bin/python benchmarks/bench_pipeline.py --data-dir /tmp/mmrec-pipeline
    .venv/bin/python benchmarks/bench_pipeline.py --data-dir /tmp/p --quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks.baselines` when run as a script

from mmrec.config import RunConfig, SyntheticConfig, parse_list  # noqa: E402
from mmrec.contracts import DatasetPaths, EtlRunPaths  # noqa: E402
from mmrec.io import read_json  # noqa: E402
from mmrec.pipeline import plan  # noqa: E402

FULL = {"users": 162_541, "movies": 62_423, "ratings": 25_000_095}
QUICK = {"users": 2_000, "movies": 1_000, "ratings": 100_000}


def measured(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, float | int]:
    """Run `cmd` to completion; its wall time, exit code and the peak RSS of its process tree."""
    import psutil

    start = time.perf_counter()
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                tree = [root, *root.children(recursive=True)]
                rss = 0
                for p in tree:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        rss += p.memory_info().rss
                peak = max(peak, rss)
            time.sleep(0.2)
    return {"wall_s": time.perf_counter() - start, "rc": proc.returncode, "peak_bytes": peak}


def throughput(argv: list[str], paths: DatasetPaths, wall_s: float) -> str:
    """What the step processed per second, read from the files it wrote."""
    stage = argv[0]
    counts = read_json(paths.root / "manifest.json")["row_counts"]
    if stage == "data":
        return f"{counts['ratings'] / wall_s:,.0f} ratings/s"
    if stage == "features":
        return f"{counts['movies'] / wall_s:,.1f} movies/s (start-up and every modality included)"
    if stage in ("etl", "evaluate"):
        return f"{counts['ratings'] / wall_s:,.0f} ratings/s"
    if stage == "train":
        run = argv[argv.index("--run-name") + 1]
        s = read_json(paths.runs / run / "summary.json")
        config = read_json(paths.runs / run / "config.json")
        etl = read_json(EtlRunPaths(Path(config["etl_path"])).summary)
        fitted = etl["rows"]["train"] - s.get("calibration", {}).get(
            "rows", 0
        )  # its slice: not fitted
        rows = fitted * s["epochs_run"]
        return f"{rows / max(s['fit_seconds'], 1e-9):,.0f} train ex/s over {s['epochs_run']} epochs (validation included)"
    return ""


def polars_baseline(root: Path, env: dict[str, str], log: Path) -> dict[str, float | int]:
    code = (
        "import sys, shutil; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
        "from benchmarks.baselines.polars_etl import run\n"
        "out = Path(sys.argv[2]) / '_polars_out'; run(Path(sys.argv[2]), out)\n"
        "shutil.rmtree(out, ignore_errors=True)\n"
    )
    return measured([sys.executable, "-c", code, str(REPO), str(root)], env, log)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/mmrec-bench-pipeline"))
    parser.add_argument("--name", default=None, help="dataset folder (default: by size)")
    parser.add_argument("--quick", action="store_true", help="the demo's size: checks the script")
    for key, value in FULL.items():
        parser.add_argument(f"--{key}", type=int, default=None, help=f"default {value:,}")
    parser.add_argument(
        "--modalities", default=None, help="default: text (text,image with --quick)"
    )
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    sizes = {k: getattr(args, k) or (QUICK if args.quick else FULL)[k] for k in FULL}
    modalities = tuple(parse_list(args.modalities or ("text,image" if args.quick else "text")))
    name = args.name or f"pipeline-{sizes['ratings']}"
    cfg = RunConfig(
        data_dir=args.data_dir,
        dataset=name,
        synthetic=SyntheticConfig(data_dir=args.data_dir, name=name, **sizes),
        modalities=modalities,
        seeds=args.seeds,
    )
    paths = DatasetPaths.of(args.data_dir, name)
    log = args.data_dir / f"{name}.bench.log"
    args.data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MMREC_NO_PROGRESS": "1"}
    mmrec = [sys.executable, "-m", "mmrec.cli"]
    rows = []
    for step in plan(cfg):
        result = measured([*mmrec, *step.argv], env, log)
        if result["rc"] != 0:
            sys.exit(f"{step.name} failed (exit {result['rc']}); see {log}")
        result["step"] = step.name
        result["rate"] = throughput(list(step.argv), paths, result["wall_s"])
        rows.append(result)
        print(json.dumps(result), flush=True)
        if step.argv[0] == "etl":
            base = polars_baseline(paths.root, env, log)
            base["step"], base["rate"] = "  baseline: polars streaming", ""
            base["ratio"] = result["wall_s"] / base["wall_s"]
            rows.append(base)
            print(json.dumps(base), flush=True)

    total = sum(r["wall_s"] for r in rows if not r["step"].startswith(" "))
    print(f"\n{sizes['ratings']:,} ratings, {sizes['movies']:,} movies, {sizes['users']:,} users, "
          f"modalities {','.join(modalities)}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'step':<40}{'wall s':>9}{'share':>7}{'peak GB':>9}  throughput")
    for r in rows:
        share = "" if r["step"].startswith(" ") else f"{r['wall_s'] / total:.0%}"
        extra = f"etl = {r['ratio']:.2f}x polars" if "ratio" in r else r["rate"]
        print(
            f"{r['step']:<40}{r['wall_s']:>9.1f}{share:>7}{r['peak_bytes'] / 2**30:>9.2f}  {extra}"
        )
    print(f"{'total (mmrec run)':<40}{total:>9.1f}")


if __name__ == "__main__":
    main()
