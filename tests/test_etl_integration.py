"""The ETL through the CLI, on a real 2-worker Dask LocalCluster, and on real ml-latest-small."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import read_split, run, write_inputs

REPO = Path(__file__).resolve().parents[1]


def _sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = [tuple(np.asarray(v).tolist()) for v in frame[col]]
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _mmrec(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MMREC_NO_PROGRESS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "mmrec.cli", "etl", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir,
        timeout=300,
    )


def test_cli_runs_and_fails_with_one_line_reason(tmp_path: Path) -> None:
    write_inputs(tmp_path, dims={"image": 4})
    ok = _mmrec("--dataset", "tiny", "--split", "cold-items", data_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "tiny: done" in ok.stdout and "cold-items-lookup" in ok.stdout
    assert (tmp_path / "tiny" / "etl" / "cold-items-lookup" / "embeddings" / "image.npy").is_file()
    assert not (tmp_path / "categories").exists()  # Categorify never writes into the CWD
    (tmp_path / "tiny" / "ratings.parquet").write_bytes(b"not parquet")
    bad = _mmrec("--dataset", "tiny", data_dir=tmp_path)
    assert bad.returncode == 2
    lines = [line for line in bad.stderr.splitlines() if line.startswith("mmrec etl")]
    assert len(lines) == 1 and "ratings.parquet" in lines[0], bad.stderr


@pytest.mark.slow
def test_two_worker_local_cluster_matches_single_process(tmp_path: Path) -> None:
    write_inputs(tmp_path, ratings=6000, dims={"image": 4})
    small = {"embeddings": "join", "part_size": "16KB", "batch_rows": 1000}  # many partitions
    single = run(tmp_path, run_name="single", **small)
    multi = run(tmp_path, run_name="multi", workers=2, **small)
    assert multi["compute"]["cluster"].startswith("LocalCluster(2")
    assert single["compute"]["partitions"]["train"] > 1  # several partitions to spread
    assert single["rows"] == multi["rows"] and single["cardinalities"] == multi["cardinalities"]
    for split in ("train", "valid"):
        a = _sorted_frame(read_split(Path(single["path"]), split))
        b = _sorted_frame(read_split(Path(multi["path"]), split))
        pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------ real MovieLens


@pytest.fixture(scope="module")
def movielens(tmp_path_factory, movielens_small_zip: Path) -> Path:
    """Real ml-latest-small, downloaded from a loopback server and converted by the data stage."""
    from mmrec.config import DownloadConfig
    from tests.loopback_http import LoopbackServer
    from workflows.data.download import download_dataset

    served = tmp_path_factory.mktemp("served")
    shutil.copyfile(movielens_small_zip, served / movielens_small_zip.name)
    digest = hashlib.sha256((served / movielens_small_zip.name).read_bytes()).hexdigest()
    data_dir = tmp_path_factory.mktemp("ml")
    with LoopbackServer(served) as srv:
        download_dataset(
            DownloadConfig(
                variant="ml-latest-small",
                data_dir=data_dir,
                base_url=srv.url,
                checksum=f"sha256:{digest}",
                retries=2,
                backoff_s=0.01,
            )
        )
    return data_dir


def test_movielens_small_random_split(movielens: Path) -> None:
    summary = run(movielens, dataset="ml-latest-small", embeddings="none", count_features=True)
    assert summary["input_rows"] == {"ratings": 100_836, "movies": 9_742}
    assert summary["bad_rows"]["dropped_total"] == 0
    assert sum(summary["rows"].values()) == 100_836
    assert 0.19 < summary["rows"]["valid"] / 100_836 < 0.21
    assert summary["cardinalities"]["movieId"] == 9_742 + 3
    assert summary["cardinalities"]["userId"] == 610 + 3  # every user has train ratings
    assert summary["cardinalities"]["genres"] == 3 + 19  # "(no genres listed)" is an empty list
    raw = pd.read_parquet(movielens / "ml-latest-small" / "ratings.parquet")
    balance = summary["label_balance"]
    assert balance["train"]["positives"] + balance["valid"]["positives"] == (raw.rating > 3).sum()
    train = read_split(Path(summary["path"]), "train")
    assert train["movieId"].between(3, 9_744).all() and train["userId"].between(3, 612).all()
    valid = read_split(Path(summary["path"]), "valid")  # has movies never rated in train: count 0
    assert np.isfinite(valid[["userId_count", "movieId_count"]].to_numpy()).all()


@pytest.mark.slow
def test_movielens_small_cold_items_and_temporal(movielens: Path) -> None:
    cold = run(movielens, dataset="ml-latest-small", split="cold-items", embeddings="none")
    cold_ids = set(cold["split"]["cold_movie_encoded_ids"])
    train = read_split(Path(cold["path"]), "train")
    assert not cold_ids & set(train["movieId"])
    temporal = run(
        movielens,
        dataset="ml-latest-small",
        split="temporal",
        temporal_mode="leave-last-out",
        embeddings="none",
        target_encoding=True,
    )
    valid = read_split(Path(temporal["path"]), "valid")
    assert np.isfinite(valid[["TE_userId_rating_binary", "TE_movieId_rating_binary"]]).all().all()
    assert temporal["rows"]["valid"] == 610  # every user has > 1 rating: one each


@pytest.mark.slow
def test_saved_workflow_loads_without_the_mmrec_code(tmp_path: Path) -> None:
    """Serving (Triton) loads workflow.pkl where `workflows` may not be installed."""
    write_inputs(tmp_path, dims={"image": 4})
    summary = run(tmp_path, embeddings="join")
    run_dir = Path(summary["path"])
    script = (
        "import sys; sys.modules['workflows'] = None\n"
        "import numpy as np, pandas as pd, nvtabular as nvt\n"
        "from merlin.io import Dataset\n"
        f"wf = nvt.Workflow.load({str(run_dir / 'workflow')!r})\n"
        "raw = pd.read_parquet(sys.argv[1], columns=['userId', 'movieId', 'rating'])\n"
        "out = wf.transform(Dataset(raw.head(50), cpu=True)).to_ddf().compute()\n"
        "print(sorted(out.columns)); print(int(out['movieId'].min()))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "tiny" / "ratings.parquet")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'image_embedding'" in proc.stdout and "'genres'" in proc.stdout


@pytest.mark.slow
def test_existing_scheduler_address(tmp_path: Path) -> None:
    from distributed import LocalCluster

    write_inputs(tmp_path)
    single = run(tmp_path, embeddings="none", run_name="single", part_size="4KB", batch_rows=500)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        remote = run(
            tmp_path,
            embeddings="none",
            run_name="remote",
            part_size="4KB",
            batch_rows=500,
            scheduler=cluster.scheduler_address,
        )
    assert remote["compute"]["cluster"] == f"scheduler {cluster.scheduler_address}"
    for split in ("train", "valid"):
        pd.testing.assert_frame_equal(
            _sorted_frame(read_split(Path(single["path"]), split)),
            _sorted_frame(read_split(Path(remote["path"]), split)),
        )
