"""Two-tower retrieval served for real: raw userId -> query vector from Triton -> top k movies.

The served query vectors must equal the query tower called in-process (behind the same
workflow) within 1e-5, and the candidates must be the exact top k of the exported index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmrec.config import ExportConfig
from models.toy import DATASET, TT_RUN, toy_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from models.export.ensemble import export

    out = tmp_path_factory.mktemp("export") / "tt"
    cfg = ExportConfig(
        dataset=DATASET, data_dir=toy_dataset(), run=TT_RUN, backend="python", out=out
    )
    return export(cfg)


@pytest.fixture(scope="module")
def server(exported: dict):
    from models.serving.server import TritonServer

    with TritonServer(Path(exported["repository"]), startup_timeout_s=600) as srv:
        yield srv


def _users() -> pd.DataFrame:
    return pd.DataFrame({"userId": np.array([1, 2, 3, 17, 40, 123_456], dtype="int32")})


def test_query_vectors_equal_the_in_process_tower(exported: dict, server) -> None:
    from models.export.reference import InProcessScorer
    from models.serving.client import ScoringClient

    tower = Path(exported["path"]) / "retrieval" / "query_tower"
    run_tower = toy_dataset() / DATASET / "runs" / TT_RUN / "query_tower"
    reference = InProcessScorer(exported["etl_dir"], run_tower if run_tower.exists() else tower)
    expected = reference.predict(_users())
    for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
        with ScoringClient(url, protocol) as client:
            served = client.predict(_users())
        assert served.shape == expected.shape == (6, 8)
        np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)


def test_candidates_are_the_exact_top_k(exported: dict, server) -> None:
    from models.serving.client import Retriever, ScoringClient
    from models.serving.index import TopKIndex

    retriever = Retriever(exported["path"], server.grpc_url, "grpc")
    ids, scores = retriever.candidates(_users(), k=10)
    retriever.close()
    assert ids.shape == scores.shape == (6, 10)
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    index = TopKIndex.load(Path(exported["path"]) / "retrieval" / "index")
    with ScoringClient(server.http_url) as client:
        queries = client.predict(_users())
    full = queries @ index.vectors.T / index.temperature
    want = index.ids[np.argsort(-full, axis=1, kind="stable")[:, :10]]
    np.testing.assert_array_equal(ids, want)
    movies = pd.read_parquet(toy_dataset() / DATASET / "movies.parquet")
    assert set(ids.ravel()) <= set(movies["movieId"])
