"""The real stages end to end: `etl` (lookup mode) -> `train` -> `export --backend python` -> Triton.

Uses the ETL and training stages as they are (not the toy), on the tiny dataset that
tests/test_train.py generates, and checks that served scores equal in-process predictions of
the trained run within 1e-5, cold and unknown movies and unknown users included, and that a
two-tower run exports from its own query/item towers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import make_train_tiny

from mmrec.config import ExportConfig, TrainConfig

pytestmark = pytest.mark.slow

ETL_RUN = "cold-items-lookup"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from models.export.ensemble import export
    from models.train import train

    data_dir = make_train_tiny(tmp_path_factory.mktemp("pipeline"), modes=("lookup",))
    common = {"dataset": "tiny", "data_dir": data_dir, "etl_run": ETL_RUN, "batch_size": 256}
    dlrm = train(TrainConfig(model="dlrm", modalities=("text",), epochs=1, **common))
    tt = train(TrainConfig(model="two-tower", modalities=("text", "image"), epochs=1, **common))
    out = data_dir / "exports"
    exp = {
        "dlrm": export(
            ExportConfig(
                dataset="tiny",
                data_dir=data_dir,
                run=dlrm["run"],
                backend="python",
                out=out / "dlrm",
            )
        ),
        "two-tower": export(
            ExportConfig(
                dataset="tiny", data_dir=data_dir, run=tt["run"], backend="python", out=out / "tt"
            )
        ),
    }
    return {"data_dir": data_dir, "dlrm": dlrm, "tt": tt, "export": exp}


def _rows(data_dir: Path, columns: list[str]) -> pd.DataFrame:
    from models.serving.client import with_movie_features

    movies = pd.read_parquet(data_dir / "tiny" / "movies.parquet")
    rng = np.random.default_rng(3)
    ids = np.concatenate([movies["movieId"].to_numpy()[::3], [999_999, 424_242]])
    users = rng.integers(1, 61, ids.size)
    users[:2] = [77_777, 88_888]  # unknown users
    pairs = pd.DataFrame({"userId": users.astype("int32"), "movieId": ids.astype("int32")})
    return with_movie_features(pairs, movies, columns)


def test_real_dlrm_run_served_equals_in_process(pipeline: dict) -> None:
    from models.export.reference import InProcessScorer
    from models.serving.client import ScoringClient
    from models.serving.server import TritonServer

    s = pipeline["export"]["dlrm"]
    assert s["kind"] == "dlrm" and s["etl_dir"].endswith(ETL_RUN)
    assert "text_embedding" in s["lookup"]
    reference = InProcessScorer(s["etl_dir"], s["model_dir"])
    with TritonServer(Path(s["repository"]), startup_timeout_s=600) as server:
        for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
            with ScoringClient(url, protocol) as client:
                rows = _rows(pipeline["data_dir"], client.raw_columns)
                served = client.score(rows)
                np.testing.assert_allclose(served, reference.score(rows), atol=1e-5, rtol=0)
                assert served.shape == (len(rows),)


def test_real_two_tower_run_exports_its_towers(pipeline: dict) -> None:
    s = pipeline["export"]["two-tower"]
    run_dir = Path(pipeline["tt"]["path"])
    assert s["kind"] == "two-tower" and s["model_dir"] == str(run_dir / "model")
    assert s["retrieval"]["items"] == 80  # every movie of movies.parquet
    movies_seen = pd.read_parquet(Path(s["path"]) / "retrieval" / "items.parquet")
    assert movies_seen["known"].sum() == s["retrieval"]["known_items"] > 0
