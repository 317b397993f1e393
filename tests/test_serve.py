"""End to end: `mmrec export --backend python`, a real tritonserver, raw rows in, scores out.

One server for the module (starting it loads TensorFlow in three python stubs: tens of seconds
on a busy 2-core machine). Scores must equal the in-process reference (workflow transform +
lookup + Keras model) within 1e-5, unknown ids included; malformed requests must get Triton
errors while the server stays ready.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrec.config import ExportConfig
from models.toy import DATASET, DLRM_RUN, sample_rows, toy_dataset

# Not marked slow: CI must start the real server at least once (issue: served == in-process).

MAX_BATCH = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from models.export.ensemble import export

    data_dir = toy_dataset()
    out = tmp_path_factory.mktemp("export") / "dlrm"
    cfg = ExportConfig(
        dataset=DATASET,
        data_dir=data_dir,
        run=DLRM_RUN,
        backend="python",
        out=out,
        max_batch_size=MAX_BATCH,
    )
    return export(cfg)


@pytest.fixture(scope="module")
def server(exported: dict):
    from models.serving.server import TritonServer

    with TritonServer(Path(exported["repository"]), startup_timeout_s=600) as srv:
        yield srv


@pytest.fixture(scope="module")
def reference(exported: dict):
    from models.export.reference import InProcessScorer

    return InProcessScorer(exported["etl_dir"], exported["model_dir"])


@pytest.fixture(scope="module", params=["http", "grpc"])
def client(request: pytest.FixtureRequest, server):
    from models.serving.client import ScoringClient

    url = server.http_url if request.param == "http" else server.grpc_url
    c = ScoringClient(url, request.param)
    yield c
    c.close()


def test_served_scores_equal_in_process_predictions(client, reference) -> None:
    rows = sample_rows(40, unknown=True)
    served = client.score(rows)
    expected = reference.score(rows)
    assert served.shape == (40,) and np.isfinite(served).all()
    np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)
    # The unknown rows really took the out-of-vocabulary path: same ids -> same encoded inputs.
    enc = reference.features(rows.iloc[:3])
    assert enc["userId"][0] == 2 and enc["movieId"][1] == 2 and enc["movieId"][2] == 2
    assert not enc["text_embedding"][1].any()


def test_raw_columns_are_the_workflow_inputs(client, reference) -> None:
    assert client.raw_columns == reference.raw_columns == ["userId", "movieId", "genres", "year"]
    assert client.inputs["genres__values"] == "BYTES"


def test_movie_features_filled_from_movies_parquet(client, reference) -> None:
    from models.serving.client import with_movie_features

    movies = toy_dataset() / DATASET / "movies.parquet"
    pairs = {
        "userId": np.array([5, 6, 424_242], "int32"),
        "movieId": np.array([7, 999, 14], "int32"),
    }
    rows = with_movie_features(pairs, movies, client.raw_columns)
    assert rows.loc[1, "genres"] == [] and rows.loc[1, "year"] == 0  # unknown movie 999
    np.testing.assert_allclose(client.score(rows), reference.score(rows), atol=1e-5, rtol=0)


def _bad_requests(client) -> dict[str, dict[str, np.ndarray]]:
    from models.serving.client import encode_rows

    good = encode_rows(sample_rows(4, unknown=False), client.inputs)
    missing = {k: v for k, v in good.items() if k != "userId"}
    wrong_dtype = {**good, "userId": good["userId"].astype(np.float32)}
    empty = encode_rows(sample_rows(4).iloc[:0], client.inputs)
    oversized = encode_rows(sample_rows(MAX_BATCH + 1, unknown=False), client.inputs)
    return {
        "missing input": missing,
        "wrong dtype": wrong_dtype,
        "empty batch": empty,
        "oversized batch": oversized,
    }


@pytest.mark.parametrize("case", ["missing input", "wrong dtype", "empty batch", "oversized batch"])
def test_malformed_requests_get_errors_and_the_server_stays_up(client, server, case) -> None:
    from tritonclient.utils import InferenceServerException

    tensors = _bad_requests(client)[case]
    with pytest.raises(InferenceServerException) as err:
        client.infer(tensors)
    message = str(err.value)
    expected = {
        "missing input": "userId",
        "wrong dtype": "data-type is 'FP32'",
        "empty batch": "empty batch",
        "oversized batch": f"exceeds the limit of {MAX_BATCH}",
    }[case]
    assert expected in message, message
    assert server.is_ready() and client.is_ready()
    assert client.score(sample_rows(3)).shape == (3,)  # and still answers


def test_batch_at_the_limit_is_served(client, reference) -> None:
    rows = sample_rows(MAX_BATCH, unknown=True, seed=7)
    np.testing.assert_allclose(client.score(rows), reference.score(rows), atol=1e-5, rtol=0)
