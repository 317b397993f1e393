"""The contracts module's rules, and the copies of its constants that must exist, agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmrec import contracts
from mmrec.config import TrainConfig
from mmrec.done import changes, check_done, parameters_of, record_of
from mmrec.errors import MmrecError


def test_pickled_operator_copies_agree_with_the_contract() -> None:
    """workflows/etl/ops.py is pickled by value into saved workflows, so it keeps its own ids."""
    from workflows.etl import ops

    assert (ops.NULL_ID, ops.OOV_ID) == (contracts.NULL_ID, contracts.OOV_ID)
    assert contracts.PADDING_ID < contracts.NULL_ID < contracts.OOV_ID < contracts.FIRST_ID


def test_one_modality_order_everywhere() -> None:
    from models.inputs import parse_modalities
    from workflows.features import store

    assert store.MODALITIES is contracts.MODALITIES
    assert parse_modalities("image,text") == contracts.MODALITIES


def test_gather_sends_unknown_ids_to_the_oov_row() -> None:
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    got = contracts.gather_rows(table, np.array([[4], [-1], [6], [0]]))
    np.testing.assert_array_equal(got, table[[4, contracts.OOV_ID, contracts.OOV_ID, 0]])


def test_layouts_name_the_documented_files(tmp_path: Path) -> None:
    paths = contracts.DatasetPaths.of(tmp_path, "d")
    etl = paths.etl_run("random-lookup")
    assert etl.matrix("text") == tmp_path / "d/etl/random-lookup/embeddings/text.npy"
    assert etl.flags("text").name == "has_text.npy"
    assert etl.vocabulary("movieId").name == "unique.movieId.parquet"
    run = paths.run("r")
    assert run.summary == tmp_path / "d/runs/r/summary.json"
    # evaluate's cache is outside every published run folder
    assert paths.run_evaluation("r") == tmp_path / "d/evaluation/runs/r.json"
    assert paths.runs not in paths.run_evaluation("r").parents


def test_done_skips_same_parameters_and_names_a_change(tmp_path: Path) -> None:
    cfg = TrainConfig(dataset="d", data_dir=tmp_path, learning_rate=0.01, mlp=(8, 4))
    wanted = parameters_of(cfg, ("data_dir", "force"))
    assert wanted["mlp"] == [8, 4] and "data_dir" not in wanted
    record = tmp_path / "out" / "summary.json"
    assert check_done(record, wanted, force=False) is None  # nothing there yet
    record.parent.mkdir()
    record.write_text(json.dumps(record_of(wanted, {"a.json": "1"}, rows=3)))
    assert check_done(record, wanted, force=False, inputs={"a.json": "1"})["rows"] == 3
    assert check_done(record, wanted, force=True) is None
    # an input rebuilt upstream: stale, redone without an error
    assert check_done(record, wanted, force=False, inputs={"a.json": "2"}) is None
    other = parameters_of(cfg, ("data_dir", "force"), learning_rate=0.02)
    with pytest.raises(MmrecError, match=r"learning_rate: 0\.01 -> 0\.02.*--force"):
        check_done(record, other, force=False)
    assert changes({"a": 1}, {"a": 1, "b": 2}) == ["b: '(not recorded)' -> 2"]


def test_the_movielens_names_are_the_variants_download_knows() -> None:
    from mmrec.contracts import MOVIELENS_VARIANTS
    from workflows.data.variants import VARIANTS

    assert set(MOVIELENS_VARIANTS) == set(VARIANTS)
