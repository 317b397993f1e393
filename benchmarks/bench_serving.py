"""Serving latency and throughput: Triton over HTTP and gRPC beside in-process prediction.

Starts a real tritonserver on an exported DLRM repository (python backend, as the bundled server
needs), then times the same raw rows three ways in one run:
  in-process  workflow transform + lookup + Keras model (models/export/reference.py)
  http, grpc  ScoringClient against the served ensemble
p50/p99 latency of single-row requests and rows/s at batch 256, plus the largest score difference
against in-process (must stay below 1e-5).

  .venv/bin/python benchmarks/bench_serving.py --export data/synthetic/export/dlrm-python
  .venv/bin/python benchmarks/bench_serving.py --toy     # the tests' tiny trained model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _rows(movies_path: Path | None, n: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    if movies_path is not None and movies_path.exists():
        movies = pd.read_parquet(movies_path).sample(n, replace=True, random_state=seed)
        genres = [list(g) if g is not None else [] for g in movies["genres"]]
        years = movies["year"].fillna(0).astype("int16").to_numpy()
        ids = movies["movieId"].to_numpy("int32")
    else:
        ids = rng.integers(1, 500, n).astype("int32")
        genres = [["Drama"]] * n
        years = np.full(n, 2000, "int16")
    return pd.DataFrame(
        {
            "userId": rng.integers(1, 1000, n).astype("int32"),
            "movieId": ids,
            "genres": genres,
            "year": years,
        }
    )


def _time(fn, batches, warmup: int = 5) -> list[float]:
    for b in batches[:warmup]:
        fn(b)
    out = []
    for b in batches:
        t0 = time.perf_counter()
        fn(b)
        out.append(time.perf_counter() - t0)
    return out


def _stats(name: str, single: list[float], big: list[float], batch: int, diff: float) -> dict:
    return {
        "path": name,
        "p50_ms": 1000 * float(np.percentile(single, 50)),
        "p99_ms": 1000 * float(np.percentile(single, 99)),
        "rows_per_s": batch * len(big) / float(np.sum(big)),
        "max_abs_diff": diff,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--export", type=Path, help="an `mmrec export --backend python` folder")
    p.add_argument("--toy", action="store_true", help="build and export the tests' toy model")
    p.add_argument("--movies", type=Path, default=None, help="movies.parquet for realistic rows")
    p.add_argument("--single", type=int, default=200, help="batch-1 requests per path")
    p.add_argument("--batches", type=int, default=30, help="batch-256 requests per path")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MMREC_NO_PROGRESS", "1")

    from models.export.reference import InProcessScorer
    from models.serving.client import ScoringClient
    from models.serving.server import TritonServer

    export_dir, movies = args.export, args.movies
    if args.toy:
        from mmrec.config import ExportConfig
        from models.export.ensemble import export
        from models.toy import DATASET, DLRM_RUN, toy_dataset

        data = toy_dataset()
        export_dir = data / "bench-export"
        cfg = ExportConfig(
            dataset=DATASET, data_dir=data, run=DLRM_RUN, backend="python", out=export_dir
        )
        export(cfg)
        movies = movies or data / DATASET / "movies.parquet"
    if export_dir is None:
        p.error("give --export DIR or --toy")
    summary = json.loads((export_dir / "export.json").read_text())
    if summary.get("kind") != "dlrm":
        p.error(f"{export_dir} is a {summary.get('kind')} export; this benchmark scores DLRM rows")

    rng_rows = _rows(movies, args.single + args.batches * args.batch, seed=0)
    singles = [rng_rows.iloc[i : i + 1] for i in range(args.single)]
    off = args.single
    bigs = [
        rng_rows.iloc[off + i * args.batch : off + (i + 1) * args.batch]
        for i in range(args.batches)
    ]
    check = rng_rows.iloc[: args.batch]

    reference = InProcessScorer(summary["etl_dir"], summary["model_dir"])
    expected = reference.score(check)
    results = [
        _stats(
            "in-process",
            _time(reference.score, singles),
            _time(reference.score, bigs),
            args.batch,
            0.0,
        )
    ]
    t0 = time.perf_counter()
    with TritonServer(summary["repository"], startup_timeout_s=600) as server:
        ready_s = time.perf_counter() - t0
        for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
            with ScoringClient(url, protocol) as client:
                diff = float(np.abs(client.score(check) - expected).max())
                results.append(
                    _stats(
                        protocol,
                        _time(client.score, singles),
                        _time(client.score, bigs),
                        args.batch,
                        diff,
                    )
                )

    print(
        f"export: {export_dir} (server ready in {ready_s:.1f} s); "
        f"{args.single} single-row requests, {args.batches} x batch {args.batch} per path"
    )
    print(
        f"{'path':<11} {'p50 ms (b=1)':>13} {'p99 ms (b=1)':>13} "
        f"{'rows/s (b=' + str(args.batch) + ')':>15} {'max |diff|':>11}"
    )
    for r in results:
        print(
            f"{r['path']:<11} {r['p50_ms']:>13.2f} {r['p99_ms']:>13.2f} "
            f"{r['rows_per_s']:>15.0f} {r['max_abs_diff']:>11.2e}"
        )
    if args.json:
        args.json.write_text(json.dumps({"ready_s": ready_s, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
