"""What the 25M benchmarks share (not a benchmark itself): the synthetic dataset, a fake
feature store, the dataset flags, and the runner that measures one case in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_dataset(data_dir: Path, name: str, users: int, movies: int, ratings: int) -> Path:
    root = data_dir / name
    if not (root / "ratings.parquet").is_file():
        subprocess.run(
            [sys.executable, "-m", "mmrec.cli", "data", "synthetic", "--name", name,
             "--users", str(users), "--movies", str(movies), "--ratings", str(ratings),
             "--no-posters", "--data-dir", str(data_dir)],
            check=True,
        )  # fmt: skip
    return root


def make_feature_store(root: Path, dim: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / "feature_store.parquet"
    if path.is_file() and pq.read_schema(path).field("image_embedding").type.list_size == dim:
        return
    ids = pq.read_table(root / "movies.parquet", columns=["movieId"])["movieId"]
    rng = np.random.default_rng(seed)
    has = (rng.random(len(ids)) > 0.1).astype(np.int8)
    vec = rng.normal(size=(len(ids), dim)).astype(np.float32) * has[:, None]
    table = pa.table(
        {
            "movieId": ids,
            "image_embedding": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), dim),
            "has_image": pa.array(has),
        }
    )
    pq.write_table(table, path)


def add_dataset_args(parser: argparse.ArgumentParser) -> None:
    """The 25M-size synthetic dataset and fake feature store both benchmarks share."""
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/mmrec-bench"))
    parser.add_argument("--name", default="synth-25m")
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--movies", type=int, default=62_423)
    parser.add_argument("--ratings", type=int, default=25_000_095)
    parser.add_argument("--dim", type=int, default=64, help="fake feature store vector size")


def run_child(label: str, cmd: list[str]) -> dict | None:
    """Run one measured case in its own process; its `RESULT {json}` line, or None (said why)."""
    env = {**os.environ, "MMREC_NO_PROGRESS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        print(f"{label}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(line[0][len("RESULT ") :])
