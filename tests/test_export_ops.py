"""The export's own operators and index, on small arrays: no model, no server."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mmrec.config import ExportConfig
from mmrec.errors import MmrecError


def _table(columns: dict) -> object:
    from merlin.table import TensorTable

    return TensorTable(columns)


def test_lookup_gathers_rows_and_sends_unknown_ids_to_oov(tmp_path: Path) -> None:
    from models.export.lookup_op import EmbeddingLookup

    matrix = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
    matrix[:3] = 0
    flags = np.array([0, 0, 0, 1, 0, 1], dtype=np.int8)
    op = EmbeddingLookup({"text_embedding": matrix, "has_text": flags}, id_column="movieId")
    ids = np.array([3, 5, 2, 99, -1], dtype=np.int64)
    out = op.transform(None, _table({"movieId": ids, "userId": ids + 10}))
    got = np.asarray(out["text_embedding"].values)
    np.testing.assert_array_equal(got, matrix[[3, 5, 2, 2, 2]])  # 99 and -1: the OOV row
    np.testing.assert_array_equal(np.asarray(out["has_text"].values), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(out["userId"].values), ids + 10)  # passed through

    # The matrices travel as artifacts, not in the pickled ensemble, and come back memory-mapped.
    restored = pickle.loads(pickle.dumps(op))
    assert restored.tables == {}
    op.save_artifacts(str(tmp_path))
    restored.load_artifacts(str(tmp_path))
    assert isinstance(restored.tables["text_embedding"], np.memmap)
    again = restored.transform(None, _table({"movieId": ids, "userId": ids}))
    np.testing.assert_array_equal(np.asarray(again["text_embedding"].values), got)


def test_lookup_output_schema_adds_typed_columns() -> None:
    from merlin.schema import ColumnSchema, Schema, Tags

    from models.export.lookup_op import EmbeddingLookup

    op = EmbeddingLookup({"text_embedding": np.zeros((4, 5), np.float32)})
    schema = op.compute_output_schema(Schema([ColumnSchema("movieId", dtype="int64")]), None)
    col = schema["text_embedding"]
    assert schema.column_names == ["movieId", "text_embedding"]
    assert col.dtype.to_numpy == np.float32 and col.shape.dims[1].max == 5
    assert Tags.EMBEDDING in col.tags


def test_batch_guard_rejects_empty_oversized_and_uneven_batches() -> None:
    from models.export.guard_op import BatchGuard

    guard = BatchGuard(max_batch_size=4)
    ok = _table({"userId": np.arange(4, dtype=np.int32)})
    assert guard.transform(None, ok) is ok
    with pytest.raises(ValueError, match="empty batch"):
        guard.transform(None, _table({"userId": np.zeros(0, dtype=np.int32)}))
    with pytest.raises(ValueError, match="batch of 5 rows exceeds the limit of 4"):
        guard.transform(None, _table({"userId": np.arange(5, dtype=np.int32)}))
    uneven = _table({"a": np.arange(3, dtype=np.int32), "b": np.arange(2, dtype=np.int32)})
    with pytest.raises(ValueError, match="disagree on the batch size"):
        guard.transform(None, uneven)
    with pytest.raises(ValueError):
        BatchGuard(0)


def test_topk_index_matches_a_full_sort(tmp_path: Path) -> None:
    from models.serving.index import TopKIndex

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 4)).astype(np.float32)
    ids = np.arange(100, 150)
    bias = rng.standard_normal(50).astype(np.float32)
    index = TopKIndex(vectors, ids, temperature=0.5, bias=bias)
    queries = rng.standard_normal((3, 4)).astype(np.float32)
    got_ids, got_scores = index.search(queries, k=7)
    full = queries @ vectors.T / 0.5 + bias
    want = np.argsort(-full, axis=1)[:, :7]
    np.testing.assert_array_equal(got_ids, ids[want])
    np.testing.assert_allclose(got_scores, np.take_along_axis(full, want, 1), rtol=1e-6)

    index.save(tmp_path / "index")
    loaded = TopKIndex.load(tmp_path / "index")
    np.testing.assert_array_equal(loaded.search(queries, 7)[0], got_ids)
    assert loaded.search(queries[0], 500)[0].shape == (1, 50)  # k is capped at the catalogue
    with pytest.raises(MmrecError, match="query dim 3 != item dim 4"):
        index.search(np.zeros((1, 3)), 5)
    with pytest.raises(MmrecError, match="no top-k index"):
        TopKIndex.load(tmp_path / "missing")


def test_export_config_errors_name_the_problem(tmp_path: Path) -> None:
    from models.export.ensemble import export

    with pytest.raises(MmrecError, match="--backend must be one of"):
        export(ExportConfig(dataset="d", data_dir=tmp_path, run="r", backend="onnx"))
    with pytest.raises(MmrecError, match="no saved model in"):
        export(ExportConfig(dataset="d", data_dir=tmp_path, run="r"))
    model = tmp_path / "m"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    with pytest.raises(MmrecError, match="workflow not found: .*/etl/workflow"):
        export(
            ExportConfig(dataset="d", data_dir=tmp_path, model_dir=model, etl_dir=tmp_path / "etl")
        )
    (tmp_path / "d" / "etl" / "a" / "workflow").mkdir(parents=True)
    (tmp_path / "d" / "etl" / "b" / "workflow").mkdir(parents=True)
    with pytest.raises(MmrecError, match="say which ETL run to use .* a, b"):
        export(ExportConfig(dataset="d", data_dir=tmp_path, model_dir=model))


def test_cli_help_lists_export_and_serve(capsys: pytest.CaptureFixture[str]) -> None:
    from mmrec.cli import main

    for command in ("export", "serve"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert "examples:" in capsys.readouterr().out
