"""`mmrec export` on a tiny trained DLRM and two-tower: repository layout, reruns, retrieval files.

The toy ETL and training outputs come from tests/test_export_toy.py (built once per session).
The TensorFlow-backend layout is checked as files only: the tritonserver here has no TF backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmrec.config import ExportConfig
from mmrec.errors import MmrecError
from models.toy import DATASET, DLRM_RUN, ETL_RUN, TT_RUN, toy_dataset

pytestmark = pytest.mark.slow


def _export(tmp: Path, run: str, backend: str, **kw) -> dict:
    from models.export.ensemble import export

    cfg = ExportConfig(
        dataset=DATASET, data_dir=toy_dataset(), run=run, backend=backend, out=tmp, **kw
    )
    return export(cfg)


def _config(path: Path) -> str:
    return (path / "config.pbtxt").read_text()


@pytest.fixture(scope="module")
def dlrm_tf(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _export(tmp_path_factory.mktemp("tf") / "out", DLRM_RUN, "tensorflow")


def test_tensorflow_backend_layout_for_the_merlin_image(dlrm_tf: dict) -> None:
    repo = Path(dlrm_tf["repository"])
    assert dlrm_tf["kind"] == "dlrm" and dlrm_tf["etl_dir"].endswith(ETL_RUN)
    assert sorted(p.name for p in repo.iterdir()) == [
        "0_transformworkflowtriton",
        "1_predicttensorflowtriton",
        "executor_model",
    ]
    tf_model = repo / "1_predicttensorflowtriton"
    assert 'platform: "tensorflow_savedmodel"' in _config(tf_model)
    assert (tf_model / "1" / "model.savedmodel" / "saved_model.pb").exists()
    assert 'backend: "python"' in _config(repo / "0_transformworkflowtriton")
    assert (repo / "0_transformworkflowtriton" / "1" / "workflow").is_dir()
    executor = _config(repo / "executor_model")
    assert 'platform: "merlin_executor"' in executor
    for raw in ("userId", "movieId", "genres__values", "genres__offsets", "year"):
        assert f'name: "{raw}"' in executor
    assert 'name: "rating"' not in executor  # labels removed from the serving workflow
    assert 'name: "rating_binary"' not in executor
    # the pretrained matrix is an artifact of the executor, beside the pickled ensemble
    lookup = repo / "executor_model" / "1" / "ensemble" / "lookup" / "text_embedding.npy"
    etl = toy_dataset() / DATASET / "etl" / ETL_RUN / "embeddings" / "text.npy"
    np.testing.assert_array_equal(np.load(lookup), np.load(etl))
    summary = json.loads((Path(dlrm_tf["path"]) / "export.json").read_text())
    assert summary["inputs"]["genres"] == {"dtype": "object", "list": True}
    assert summary["lookup"] == {"text_embedding": list(np.load(etl).shape)}


def test_rerun_is_a_no_op_unless_forced(dlrm_tf: dict) -> None:
    out = Path(dlrm_tf["path"])
    stamp = (out / "export.json").stat().st_mtime_ns
    again = _export(out, DLRM_RUN, "tensorflow")
    assert again["skipped"] is True and (out / "export.json").stat().st_mtime_ns == stamp
    with pytest.raises(MmrecError, match="backend: 'tensorflow' -> 'python'"):
        _export(out, DLRM_RUN, "python")  # other parameters: an error, not a silent redo
    assert (out / "export.json").stat().st_mtime_ns == stamp
    forced = _export(out, DLRM_RUN, "tensorflow", force=True)
    assert forced["skipped"] is False and (out / "export.json").stat().st_mtime_ns != stamp


def test_python_backend_wraps_the_same_savedmodel(tmp_path: Path, dlrm_tf: dict) -> None:
    s = _export(tmp_path / "py", DLRM_RUN, "python")
    repo = Path(s["repository"])
    model = repo / "1_predicttensorflowpython"
    cfg = _config(model)
    assert 'backend: "python"' in cfg and "tensorflow_savedmodel" not in cfg
    assert (model / "1" / "model.py").exists()
    tf_cfg = _config(Path(dlrm_tf["repository"]) / "1_predicttensorflowtriton")
    py, tf = _parse(cfg), _parse(tf_cfg)
    assert list(py.input) == list(tf.input) and list(py.output) == list(tf.output)
    assert [i.name for i in py.input if i.name.endswith("_embedding")] == ["text_embedding"]


def _parse(text: str):
    import tritonclient.grpc.model_config_pb2 as mc
    from google.protobuf import text_format

    return text_format.Parse(text, mc.ModelConfig())


def test_two_tower_exports_query_tower_and_every_movie(tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from models.serving.index import TopKIndex

    s = _export(tmp_path / "tt", TT_RUN, "python")
    assert s["kind"] == "two-tower"
    assert list(s["inputs"]) == ["userId"]  # the query side needs only the user
    out = Path(s["path"])
    items = pq.read_table(out / "retrieval" / "items.parquet")
    movies = pd.read_parquet(toy_dataset() / DATASET / "movies.parquet")
    assert sorted(items["movieId"].to_pylist()) == sorted(movies["movieId"].tolist())
    emb_type = items.schema.field("embedding").type
    assert pa.types.is_fixed_size_list(emb_type) and emb_type.list_size == 8
    assert emb_type.value_type == pa.float32()
    known = items["known"].to_numpy()
    assert known.sum() == 50 and s["retrieval"]["known_items"] == 50  # 10 movies never rated
    index = TopKIndex.load(out / "retrieval" / "index")
    vectors = np.stack(items["embedding"].to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(index.vectors, vectors)
    ids, _ = index.search(vectors[:2], k=5)
    assert ids.shape == (2, 5)


def test_cli_export_prints_the_repository(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mmrec.cli import main

    args = ["export", "--data-dir", str(toy_dataset()), "--dataset", DATASET]
    args += ["--run", DLRM_RUN, "--backend", "python", "--out", str(tmp_path / "cli")]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "export (dlrm, python backend): done" in out
    assert f"repository: {tmp_path / 'cli' / 'triton'}" in out
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "already up to date" in out
