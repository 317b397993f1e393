"""Our Parquet writer against Merlin's `Dataset.to_parquet`: the same files, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import run, write_inputs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    data_dir = tmp_path_factory.mktemp("writer")
    write_inputs(data_dir, ratings=3000, dims={"image": 8})
    out = {mode: Path(run(data_dir, embeddings=mode)["path"]) for mode in ("lookup", "join")}
    return {**out, "ratings": data_dir / "tiny" / "ratings.parquet"}


def transformed(runs: dict[str, Path], mode: str, partitions: int = 3):
    """(saved workflow, raw ratings in partitions with every 7th movie unknown, row count)."""
    import nvtabular as nvt
    from merlin.io import Dataset

    raw = pd.read_parquet(runs["ratings"], columns=["userId", "movieId", "rating"])
    unknown = np.arange(len(raw)) % 7 == 0
    raw["movieId"] = np.where(unknown, 99_999, raw["movieId"]).astype(np.int32)
    wf = nvt.Workflow.load(str(runs[mode] / "workflow"))
    return wf, Dataset(raw, cpu=True, npartitions=partitions), len(raw)


@pytest.mark.parametrize("mode", ["lookup", "join"])
def test_files_are_byte_identical_to_merlins(runs, mode: str, tmp_path: Path) -> None:
    from workflows.etl.writer import write_transformed

    wf, raw, n = transformed(runs, mode)
    wf.transform(raw).to_parquet(str(tmp_path / "merlin"), shuffle=None, row_group_size=300)
    rows = write_transformed(wf, raw, tmp_path / "ours", row_group_rows=300)
    merlin, ours = tmp_path / "merlin", tmp_path / "ours"
    names = sorted(p.name for p in merlin.glob("*.parquet"))
    assert names == sorted(rows) == ["part_0.parquet", "part_1.parquet", "part_2.parquet"]
    assert sum(rows.values()) == n
    for name in [*names, "_metadata", "_metadata.json"]:
        assert (ours / name).read_bytes() == (merlin / name).read_bytes(), name
    for name in ("schema.pbtxt", ".merlin/schema.json"):
        assert (ours / name).is_file()
    assert (
        json.loads((ours / ".merlin/schema.json").read_text())["feature"]
        == json.loads((merlin / ".merlin/schema.json").read_text())["feature"]
    )
    listed = (ours / "_file_list.txt").read_text().split()
    assert listed == ["3", *(str(ours / n) for n in names)]
    # the fast path ran (it falls back to Merlin's conversion, with the same bytes, otherwise)
    from workflows.etl.ops import ItemGather

    assert isinstance(wf.output_node.op, ItemGather) and wf.output_node.op.after
    if mode == "join":  # the vectors went through the Arrow path too
        assert "image_embedding" in pq.read_schema(ours / names[0]).names


def test_merlin_loader_reads_identical_batches(runs, tmp_path: Path) -> None:
    from merlin.dataloader.tensorflow import Loader
    from merlin.io import Dataset

    from workflows.etl.writer import write_transformed

    wf, raw, n_rows = transformed(runs, "join")
    wf.transform(raw).to_parquet(str(tmp_path / "merlin"), shuffle=None)
    write_transformed(wf, raw, tmp_path / "ours", row_group_rows=500)

    def batches(path: Path):
        return Loader(Dataset(str(path), engine="parquet", cpu=True), batch_size=333)

    count = 0
    for (xa, ya), (xb, yb) in zip(
        batches(tmp_path / "merlin"), batches(tmp_path / "ours"), strict=True
    ):
        assert sorted(xa) == sorted(xb)
        assert {"genres__values", "genres__offsets", "image_embedding"} <= set(xa)
        for key in xa:
            np.testing.assert_array_equal(xa[key].numpy(), xb[key].numpy(), err_msg=key)
        for key in ya:
            np.testing.assert_array_equal(ya[key].numpy(), yb[key].numpy())
        count += 1
    assert count == -(-n_rows // 333)


def test_a_source_that_disagrees_with_the_frame_fails(runs, tmp_path: Path) -> None:
    from workflows.etl.writer import PartitionConverter, write_partitions

    wf, raw, _ = transformed(runs, "lookup", partitions=1)
    gather = wf.output_node.op

    def shifted(df: pd.DataFrame) -> dict[str, pa.Array]:
        cols = gather.arrow_columns(df.assign(movieId=df["movieId"] + 1))
        return {"genres": cols["genres"]}

    ddf = wf.transform(raw).to_ddf()
    convert = PartitionConverter(list(ddf.columns), column_source=shifted)
    with pytest.raises(RuntimeError, match="differs from pa.Table.from_pandas"):
        write_partitions(ddf, convert, tmp_path / "bad", schema=wf.output_schema, rows=500)
    assert not (tmp_path / "bad").exists()  # nothing half-written is left


def test_plain_dataset_is_written_as_merlin_does(runs, tmp_path: Path) -> None:
    from merlin.io import Dataset

    from workflows.etl.writer import write_dataset

    frame = pd.DataFrame(
        {
            "ids": np.arange(1000, dtype=np.int64),
            "lists": [np.arange(i % 4, dtype=np.int64) for i in range(1000)],
            "x": np.linspace(0, 1, 1000, dtype=np.float32),
        }
    )
    ds = Dataset(frame, cpu=True, npartitions=2)
    ds.to_parquet(str(tmp_path / "merlin"), shuffle=None, row_group_size=128)
    rows = write_dataset(ds, tmp_path / "ours", row_group_rows=128)
    assert rows == {"part_0.parquet": 500, "part_1.parquet": 500}
    for name in [*rows, "_metadata", "_metadata.json"]:
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "merlin" / name).read_bytes()


def test_arrow_columns_match_the_operator(runs) -> None:
    import nvtabular as nvt

    wf = nvt.Workflow.load(str(runs["join"] / "workflow"))
    gather = wf.output_node.op
    n = len(gather.table)
    ids = np.array([-5, 0, 2, 3, n - 1, n, 10 * n])  # out-of-range ids clip like transform
    frame = pd.DataFrame({"movieId": ids})
    cols = gather.arrow_columns(frame)
    assert list(cols) == list(gather.table.columns)
    expected = gather.table.take(np.clip(ids, 0, n - 1)).reset_index(drop=True)
    want = pa.Table.from_pandas(expected, preserve_index=False)
    for name, array in cols.items():
        assert array.equals(want.column(name).combine_chunks()), name


def test_arrow_columns_need_the_after_column() -> None:
    from merlin.schema import ColumnSchema

    from workflows.etl.ops import ItemGather

    op = ItemGather(pd.DataFrame({"x": [1.0]}), [ColumnSchema("x", dtype=np.float64)])
    with pytest.raises(ValueError, match="after"):
        op.arrow_columns(pd.DataFrame({"movieId": [0]}))
