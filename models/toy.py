"""A tiny but real ETL + training output for the export and serving tests and the serving benchmark.

`toy_dataset()` writes, under one temporary data dir, what the etl and train stages promise
(docs/contracts.md): movies.parquet, a fitted NVTabular workflow (userId, movieId, genres, year,
label rating_binary), `embeddings/text.npy` + `has_text.npy` aligned to the encoded movie ids, a
Merlin Models DLRM fed `text_embedding` from that matrix, and a two-tower model, each trained
for one epoch on a few hundred synthetic rows. It is built once per test session.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mmrec.contracts import EtlRunPaths, TrainRunPaths

DATASET = "toy"
ETL_RUN = "random-lookup"
DLRM_RUN = "dlrm-toy"
TT_RUN = "two-tower-toy"
DIM = 8
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]


@functools.lru_cache(maxsize=1)
def toy_dataset() -> Path:
    """The data dir holding `toy/` with etl/ and runs/; built on first use, removed at exit."""
    keep = os.environ.get("MMREC_TOY_DIR")  # reuse a built toy across runs (development)
    if keep and (Path(keep) / ".complete").exists():
        return Path(keep)
    data_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="mmrec-toy-"))
    if not keep:
        atexit.register(shutil.rmtree, data_dir, True)
    root = data_dir / DATASET
    movies, ratings = _raw(root)
    train = _etl(root / "etl" / ETL_RUN, movies, ratings)
    _train_dlrm(root, train)
    _train_two_tower(root, train)
    (data_dir / ".complete").touch()
    return data_dir


def sample_rows(n: int = 16, unknown: bool = True, seed: int = 1):
    """Raw request rows: known users and movies, plus unknown ones when asked."""
    import pandas as pd

    movies = pd.read_parquet(toy_dataset() / DATASET / "movies.parquet")
    rng = np.random.default_rng(seed)
    picks = movies.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    rows = pd.DataFrame(
        {
            "userId": rng.integers(1, 41, n).astype("int32"),
            "movieId": picks["movieId"].astype("int32"),
            "genres": [list(g) for g in picks["genres"]],
            "year": picks["year"].astype("int16"),
        }
    )
    if unknown:
        rows.loc[0, "userId"] = 987_654  # unknown user
        rows.loc[1, "movieId"] = 999_999  # unknown movie, unknown genre, unseen year
        rows.at[1, "genres"] = ["Documentary"]
        rows.loc[1, "year"] = 1900
        rows.loc[2, ["userId", "movieId"]] = (555_555, 888_888)  # both unknown
        rows.at[2, "genres"] = []
    return rows


def _raw(root: Path):
    import pandas as pd

    rng = np.random.default_rng(0)
    movie_ids = (np.arange(1, 61) * 7).astype("int32")
    movies = pd.DataFrame(
        {
            "movieId": movie_ids,
            "title": [f"Movie {m}" for m in movie_ids],
            "year": rng.integers(1980, 2020, len(movie_ids)).astype("int16"),
            "genres": [
                list(rng.choice(GENRES, rng.integers(1, 3), replace=False)) for _ in movie_ids
            ],
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    movies.to_parquet(root / "movies.parquet", index=False)
    n = 400
    ratings = pd.DataFrame(
        {
            "userId": rng.integers(1, 41, n).astype("int32"),
            "movieId": rng.choice(movie_ids[:50], n).astype("int32"),  # 10 movies never rated
            "rating": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], n).astype("float32"),
        }
    )
    return movies, ratings


def _etl(etl_dir: Path, movies, ratings):
    import nvtabular as nvt
    from merlin.io import Dataset
    from merlin.schema import Tags

    df = ratings.merge(movies[["movieId", "genres", "year"]], on="movieId")
    files = EtlRunPaths(etl_dir)
    cats = str(files.categories)
    user = ["userId"] >> nvt.ops.Categorify(out_path=cats) >> nvt.ops.TagAsUserID()
    item = ["movieId"] >> nvt.ops.Categorify(out_path=cats) >> nvt.ops.TagAsItemID()
    feats = ["genres", "year"] >> nvt.ops.Categorify(out_path=cats) >> nvt.ops.TagAsItemFeatures()
    label = (
        ["rating"]
        >> nvt.ops.LambdaOp(lambda r: (r > 3.0).astype("int32"))
        >> nvt.ops.Rename(name="rating_binary")
        >> nvt.ops.AddMetadata(tags=[Tags.BINARY_CLASSIFICATION, Tags.TARGET])
    )
    wf = nvt.Workflow(user + item + feats + label)
    ds = Dataset(df, cpu=True)
    wf.fit(ds)
    wf.save(str(files.workflow))
    train = wf.transform(ds).to_ddf().compute().reset_index(drop=True)

    card = int(wf.output_schema["movieId"].int_domain.max) + 1
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((card, DIM)).astype("float32")
    has = np.ones(card, dtype="int8")
    emb[:3] = 0
    has[:3] = 0
    emb[5] = 0  # one known movie without the modality
    has[5] = 0
    files.embeddings.mkdir(parents=True, exist_ok=True)
    np.save(files.matrix("text"), emb)
    np.save(files.flags("text"), has)
    files.summary.write_text(json.dumps({"embeddings": "lookup", "toy": True}))
    train["text_embedding"] = list(emb[train["movieId"].to_numpy()])
    return train, wf.output_schema


def _train_dataset(train):
    from merlin.io import Dataset
    from merlin.schema import ColumnSchema, Schema, Tags

    frame, schema = train
    emb = ColumnSchema("text_embedding", dtype="float32", dims=(None, DIM), tags=[Tags.EMBEDDING])
    schema = schema + Schema([emb])
    ds = Dataset(frame, cpu=True, schema=schema)
    return ds, schema


def _train_dlrm(root: Path, train) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import merlin.models.tf as mm
    import tensorflow as tf
    from merlin.schema import Tags

    tf.keras.utils.set_random_seed(0)
    ds, schema = _train_dataset(train)
    schema = schema.excluding_by_name(["rating"])
    embeddings = mm.ParallelBlock(
        {
            "categorical": mm.Embeddings(schema.select_by_tag(Tags.CATEGORICAL), dim=DIM),
            "pretrained": mm.PretrainedEmbeddings(
                schema.select_by_tag(Tags.EMBEDDING), output_dims=DIM
            ),
        }
    )
    model = mm.DLRMModel(
        schema,
        embeddings=embeddings,
        bottom_block=mm.MLPBlock([DIM]),
        top_block=mm.MLPBlock([DIM]),
        prediction_tasks=mm.BinaryOutput("rating_binary"),
    )
    model.compile(optimizer="adam")
    model.fit(ds, batch_size=64, epochs=1, verbose=0)
    run = root / "runs" / DLRM_RUN
    model.save(str(run / "model"))
    TrainRunPaths(run).summary.write_text(json.dumps({"model": "dlrm", "etl_run": ETL_RUN}))


def _train_two_tower(root: Path, train) -> None:
    import merlin.models.tf as mm
    import tensorflow as tf
    from merlin.schema import Tags

    tf.keras.utils.set_random_seed(0)
    ds, schema = _train_dataset(train)
    schema = schema.excluding_by_name(["rating", "rating_binary"])
    query = mm.Encoder(schema.select_by_tag(Tags.USER), mm.MLPBlock([DIM]))
    item_schema = schema.select_by_tag(Tags.ITEM) + schema.select_by_tag(Tags.EMBEDDING)
    candidate = mm.Encoder(item_schema, mm.MLPBlock([DIM]))
    model = mm.TwoTowerModelV2(query, candidate)
    model.compile(optimizer="adam")
    model.fit(ds, batch_size=64, epochs=1, verbose=0)
    run = root / "runs" / TT_RUN
    model.save(str(run / "model"))
    TrainRunPaths(run).summary.write_text(json.dumps({"model": "two-tower", "etl_run": ETL_RUN}))
