"""Benchmark `mmrec data download` at ml-25m size against a plain `pandas.read_csv`.

Generates (or reuses) a synthetic dataset shaped like ml-25m (162,541 users, 62,423 movies,
25,000,095 ratings; no posters), writes it as a GroupLens-style archive, serves it on
127.0.0.1 and runs the real `download_dataset` (download + md5 + extract + convert to Parquet).
Beside it, in the same run, a plain `pandas.read_csv` of the same ratings.csv. Every step runs
in its own subprocess, so wall time and peak RSS (from wait4's rusage) are that step's alone.

    nice -n 10 .venv/bin/python benchmarks/bench_convert_25m.py            # full size
    .venv/bin/python benchmarks/bench_convert_25m.py --ratings 200000      # smoke test
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL = {"users": 162_541, "movies": 62_423, "ratings": 25_000_095}
VARIANT = "ml-25m"

GENERATE = """
import sys
from pathlib import Path
from mmrec.config import SyntheticConfig
from workflows.data.synthetic import generate_synthetic
data_dir, name, users, movies, ratings, seed = sys.argv[1:7]
generate_synthetic(SyntheticConfig(data_dir=Path(data_dir), name=name, users=int(users),
    movies=int(movies), ratings=int(ratings), seed=int(seed), posters=False,
    corrupt_poster_rate=0.0))
"""
ARCHIVE = """
import sys
from pathlib import Path
from mmrec.paths import DatasetPaths
from workflows.data.archive import write_archive
write_archive(DatasetPaths.of(sys.argv[1], sys.argv[2]), Path(sys.argv[3]), folder=sys.argv[4])
"""
DOWNLOAD = """
import sys
from pathlib import Path
from mmrec.config import DownloadConfig
from workflows.data.download import download_dataset
m = download_dataset(DownloadConfig(variant=sys.argv[1], data_dir=Path(sys.argv[2]),
    base_url=sys.argv[3], force=True))
print(m["row_counts"]["ratings"])
"""
READ_CSV = """
import sys
import pandas as pd
df = pd.read_csv(sys.argv[1])
print(len(df))
"""


def measure(label: str, code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter; wall seconds and that child's peak RSS."""
    env = {**os.environ, "MMREC_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: failed with exit code {proc.returncode}")
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    print(f"  {label}: {wall:.1f} s, peak RSS {rss_mb:,.0f} MB", file=sys.stderr)
    return {"step": label, "wall_s": wall, "rss_mb": rss_mb, "stdout": out.strip()}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    share = args.ratings / FULL["ratings"]
    users = args.users or max(50, round(FULL["users"] * share))
    movies = args.movies or max(50, round(FULL["movies"] * share**0.5))
    return users, movies, args.ratings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ratings", type=int, default=FULL["ratings"])
    p.add_argument("--users", type=int, default=None, help="default: scaled from ml-25m")
    p.add_argument("--movies", type=int, default=None, help="default: scaled from ml-25m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/mmrec-bench-convert"))
    p.add_argument("--fresh", action="store_true", help="regenerate dataset and archive")
    p.add_argument("--keep", action="store_true", help="keep the downloaded copy afterwards")
    args = p.parse_args()
    users, movies, ratings = sizes(args)
    work = args.work_dir
    name = f"synthetic-{ratings}"
    data_dir, serve_dir, dl_dir = work / "data", work / "serve", work / "download"
    archive = serve_dir / f"{VARIANT}.zip"
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    print(f"dataset: {users:,} users, {movies:,} movies, {ratings:,} ratings", file=sys.stderr)

    rows = []
    if (data_dir / name / "manifest.json").exists():
        print("  generate: reused (pass --fresh to time it)", file=sys.stderr)
    else:
        rows.append(
            measure("generate synthetic", GENERATE, str(data_dir), name, str(users),
                    str(movies), str(ratings), str(args.seed))
        )  # fmt: skip
    if archive.exists() and Path(f"{archive}.md5").exists():
        print("  archive: reused", file=sys.stderr)
    else:
        rows.append(measure("write archive", ARCHIVE, str(data_dir), name, str(archive), VARIANT))

    csv_dir = work / "csv"
    ratings_csv = csv_dir / "ratings.csv"
    if not ratings_csv.exists():
        csv_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zf, open(ratings_csv, "wb") as f:
            shutil.copyfileobj(zf.open(f"{VARIANT}/ratings.csv"), f, 1 << 20)

    shutil.rmtree(dl_dir, ignore_errors=True)
    httpd, url = serve(serve_dir)
    try:
        download = measure("download_dataset", DOWNLOAD, VARIANT, str(dl_dir), url)
    finally:
        httpd.shutdown()
    baseline = measure("pandas.read_csv", READ_CSV, str(ratings_csv))
    assert int(download["stdout"].splitlines()[-1]) == ratings, download["stdout"]
    assert int(baseline["stdout"].splitlines()[-1]) == ratings, baseline["stdout"]
    if not args.keep:
        shutil.rmtree(dl_dir, ignore_errors=True)

    zip_mb = archive.stat().st_size / 2**20
    csv_mb = ratings_csv.stat().st_size / 2**20
    print()
    print(f"{ratings:,} ratings; archive {zip_mb:,.0f} MB, ratings.csv {csv_mb:,.0f} MB")
    print(f"{'step':<28}{'wall s':>9}{'peak RSS MB':>13}{'x time':>9}{'x RSS':>8}")
    for row in [*rows, download, baseline]:
        print(
            f"{row['step']:<28}{row['wall_s']:>9.1f}{row['rss_mb']:>13,.0f}"
            f"{row['wall_s'] / baseline['wall_s']:>9.2f}{row['rss_mb'] / baseline['rss_mb']:>8.2f}"
        )
    print("(x: ratio to pandas.read_csv of the same ratings.csv, measured in this run;")
    print(" download_dataset also downloads, checks the md5, unzips and writes Parquet)")
    summary = {r["step"]: {"wall_s": r["wall_s"], "rss_mb": r["rss_mb"]} for r in rows}
    summary |= {
        "download_dataset": {"wall_s": download["wall_s"], "rss_mb": download["rss_mb"]},
        "pandas.read_csv": {"wall_s": baseline["wall_s"], "rss_mb": baseline["rss_mb"]},
    }
    (work / "last_run.json").write_text(json.dumps({"ratings": ratings, **summary}, indent=2))


if __name__ == "__main__":
    main()
