"""The original series' NVTabular ETL as written: pandas 80/20 sample, JoinExternal of the
genres before a Categorify fitted on the joined train rows, default partitioning and scheduler.

(The series also joined the 3,072-d poster/synopsis vectors per row; at 25M rows that is about
290 GB, so that step is left out here.)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.baselines.common import SEED, THRESHOLD


def run(root: Path, out: Path) -> dict[str, int]:
    import nvtabular as nvt
    from merlin.io import Dataset
    from merlin.schema import Tags

    ratings = pd.read_parquet(root / "ratings.parquet", columns=["userId", "movieId", "rating"])
    train = ratings.sample(frac=0.8, random_state=SEED)
    valid = ratings.drop(train.index)
    del ratings
    out.mkdir(parents=True, exist_ok=True)
    train.to_parquet(out / "train_raw.parquet")
    valid.to_parquet(out / "valid_raw.parquet")
    rows = {"train": len(train), "valid": len(valid)}
    del train, valid
    movies = pd.read_parquet(root / "movies.parquet", columns=["movieId", "genres"])

    joined = ["userId", "movieId"] >> nvt.ops.JoinExternal(movies, on=["movieId"])
    cat_features = joined >> nvt.ops.Categorify(out_path=str(out))
    label = (
        nvt.ColumnSelector(["rating"])
        >> nvt.ops.LambdaOp(lambda col: (col > THRESHOLD).astype("int8"))
        >> nvt.ops.AddTags([Tags.TARGET, Tags.BINARY_CLASSIFICATION])
    )
    workflow = nvt.Workflow(cat_features + label)
    train_ds = Dataset(str(out / "train_raw.parquet"), cpu=True)
    valid_ds = Dataset(str(out / "valid_raw.parquet"), cpu=True)
    workflow.fit(train_ds)
    workflow.transform(train_ds).to_parquet(str(out / "train"))
    workflow.transform(valid_ds).to_parquet(str(out / "valid"))
    workflow.save(str(out / "workflow"))
    return rows
