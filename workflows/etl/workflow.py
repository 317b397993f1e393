"""The NVTabular graph: ids, genres, year, label, optional counts / target encoding / embeddings.

Every Categorify here is given its vocabulary instead of scanning the ratings:
- movieId, genres and year come from the movie catalogue (movies.parquet is item metadata, not
  interactions), so a movie held out of train (cold item) still gets its own encoded id and its
  content row in the embedding matrix; its id-embedding row is simply never trained.
- userId comes from the train split's users (found while splitting), so users seen only in
  valid encode to the out-of-vocabulary id 2: the workflow is fitted on train only.
Ids are assigned in sorted order from 3 (0 padding, 1 null, 2 out-of-vocabulary).

Genres and year are encoded by Categorify once per movie (a small workflow over the catalogue)
and attached to each rating by its encoded movie id (`ops.ItemGather`), as are the pretrained
vectors in `join` mode: the same rows the `lookup` matrices hold.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec.contracts import NULL_ID, RESERVED_IDS
from workflows.etl.validate import Catalogue

TE_SMOOTHING = 20  # target encoding: pseudo-ratings at the train positive rate per id


def _categorify(out_path: Path, col: str, vocab: pd.Series, *, scalar_ids: bool = False):
    """Categorify with a given (sorted) vocabulary; scalar id columns encode by binary search."""
    import nvtabular as nvt

    if scalar_ids:
        from workflows.etl.ops import SortedCategorify

        return SortedCategorify(out_path=str(out_path), vocabs={col: vocab})
    return nvt.ops.Categorify(out_path=str(out_path), vocabs={col: vocab})


def encode_catalogue(catalogue: Catalogue, out_path: Path) -> tuple[pd.DataFrame, dict]:
    """Categorify genres and year over the catalogue; return (encoded table, column schemas)."""
    import dask.dataframe as dd
    import nvtabular as nvt
    from merlin.io import Dataset

    years = pd.array(np.zeros(len(catalogue.years), dtype=np.int16), dtype="Int16")
    known = ~np.isnan(catalogue.years)
    years[known] = catalogue.years[known].astype(np.int16)
    years[~known] = pd.NA
    movies = pd.DataFrame(
        {
            "genres": pd.Series([np.asarray(g, dtype=object) for g in catalogue.genres]),
            "year": years,
        }
    )
    genres = ["genres"] >> _categorify(
        out_path, "genres", pd.Series(catalogue.genre_vocab, name="genres", dtype=object)
    )
    year = ["year"] >> _categorify(
        out_path, "year", pd.Series(catalogue.year_vocab, name="year", dtype="Int16")
    )
    wf = nvt.Workflow(genres + year)
    # Named here: otherwise dask names it by a token of the data, which pickles every genre
    # array of the catalogue (0.3 s per call at 62k movies, twice per run).
    ddf = dd.from_pandas(movies, npartitions=1, sort=False, name=f"catalogue-{uuid.uuid4().hex}")
    encoded = wf.fit_transform(Dataset(ddf, cpu=True)).to_ddf().compute()
    schemas = {c: wf.output_schema[c] for c in ("genres", "year")}
    return encoded.reset_index(drop=True), schemas


def item_table(
    catalogue: Catalogue,
    encoded: pd.DataFrame,
    schemas: dict,
    embeddings: dict[str, np.ndarray] | None = None,
    flags: dict[str, np.ndarray] | None = None,
):
    """Per-movie columns indexed by encoded movie id (row k = id k); returns (table, schemas)."""
    from merlin.schema import ColumnSchema, Tags

    n = len(catalogue.movie_ids) + RESERVED_IDS
    empty = np.zeros(0, dtype=np.int64)
    genres = [empty] * RESERVED_IDS + [np.asarray(g, dtype=np.int64) for g in encoded["genres"]]
    year = np.concatenate(
        [np.full(RESERVED_IDS, NULL_ID, np.int64), encoded["year"].to_numpy(np.int64)]
    )
    table = pd.DataFrame({"genres": pd.Series(genres, dtype=object), "year": year})
    g, y = schemas["genres"], schemas["year"]
    cols = [
        ColumnSchema(
            "genres", tags=g.tags, dtype=np.int64, is_list=True, is_ragged=True,
            properties=g.properties,
        ),
        ColumnSchema("year", tags=y.tags, dtype=np.int64, properties=y.properties),
    ]  # fmt: skip
    for m, matrix in (embeddings or {}).items():
        if matrix.shape[0] != n:
            raise ValueError(f"{m} matrix has {matrix.shape[0]} rows, expected {n}")
        table[f"{m}_embedding"] = pd.Series(list(matrix), dtype=object)
        table[f"has_{m}"] = flags[m].astype(np.float32)
        cols.append(
            ColumnSchema(
                f"{m}_embedding",
                tags=[Tags.EMBEDDING],
                dtype=np.float32,
                dims=(None, matrix.shape[1]),
            )
        )
        cols.append(ColumnSchema(f"has_{m}", tags=[Tags.CONTINUOUS], dtype=np.float32))
    return table, cols


def count_table(col: str, counts: np.ndarray):
    """`<col>_count`: log1p of train ratings per encoded id, standardised over train rows.

    Indexed by encoded id like the item table; ids 0-2 and entities unseen in train count 0.
    (Computed while splitting: NVTabular's JoinGroupby leaves NaN for ids unseen in train and
    then fails casting the count to int.)
    """
    from merlin.schema import ColumnSchema, Tags

    counts = np.asarray(counts, dtype=np.float64)
    logs = np.log1p(counts)
    total = counts.sum()
    mean = float((counts * logs).sum() / total) if total else 0.0
    std = float(np.sqrt((counts * (logs - mean) ** 2).sum() / total)) if total else 1.0
    values = np.concatenate([np.zeros(RESERVED_IDS), logs])
    values = ((values - mean) / (std or 1.0)).astype(np.float32)
    name = f"{col}_count"
    table = pd.DataFrame({name: values})
    return table, [ColumnSchema(name, tags=[Tags.CONTINUOUS], dtype=np.float32)]


def rate_table(col: str, positives: np.ndarray, counts: np.ndarray, prior: float):
    """`TE_<col>_rating_binary` by encoded id: the smoothed positive rate over all of train.

    The value NVTabular's TargetEncoding gives a row encoded from all of train, (positives +
    s * prior) / (count + s); ids 0-2 and ids without a train rating get the prior. Valid rows
    and serving read this table by id, as they do the counts: NVTabular's op would apply its
    k folds to them too (a movie absent from a fold got the prior: 6% of ml-latest-small's
    valid rows) and keeps the label as an input, so a served workflow could not run it.
    """
    from merlin.schema import ColumnSchema, Tags

    rates = (np.asarray(positives, np.float64) + TE_SMOOTHING * prior) / (
        np.asarray(counts, np.float64) + TE_SMOOTHING
    )
    values = np.concatenate([np.full(RESERVED_IDS, prior), rates]).astype(np.float32)
    name = f"TE_{col}_rating_binary"
    return pd.DataFrame({name: values}), [
        ColumnSchema(name, tags=[Tags.CONTINUOUS], dtype=np.float32)
    ]


def build_workflow(
    *,
    catalogue: Catalogue,
    train_users: np.ndarray,
    out_path: Path,
    rating_threshold: float,
    keep_rating: bool,
    count_features: bool = False,
    target_encoding: bool = False,
    target_encoding_folds: int = 5,
    seed: int = 42,
    embeddings: dict[str, np.ndarray] | None = None,
    flags: dict[str, np.ndarray] | None = None,
    user_counts: np.ndarray | None = None,
    movie_counts: np.ndarray | None = None,
    rates: dict | None = None,
    client=None,
):
    """Return an unfitted nvt.Workflow; `embeddings` given means `join` mode.

    `user_counts`/`movie_counts` (train ratings per train user / catalogue movie) are needed
    with `count_features`. With `target_encoding`, `rates` ({"userId": rate_table(...),
    "movieId": ...}) gives the workflow for valid rows and serving, which gathers the rates by
    id; without it, the train workflow: NVTabular's out-of-fold TargetEncoding.
    """
    import nvtabular as nvt
    from merlin.schema import Tags

    from workflows.etl.ops import ItemGather, RatingTargets

    ops = nvt.ops
    user_codes = ["userId"] >> _categorify(
        out_path, "userId", pd.Series(train_users, name="userId"), scalar_ids=True
    )
    user = user_codes >> ops.TagAsUserID()
    movie_codes = ["movieId"] >> _categorify(
        out_path, "movieId", pd.Series(catalogue.movie_ids, name="movieId"), scalar_ids=True
    )
    movie = movie_codes >> ops.TagAsItemID()
    encoded, schemas = encode_catalogue(catalogue, out_path)
    table, cols = item_table(catalogue, encoded, schemas, embeddings, flags)
    if count_features:
        counts, count_cols = count_table("movieId", movie_counts)
        table = pd.concat([table, counts], axis=1)
        cols = cols + count_cols
    if target_encoding and rates is not None:
        movie_rates, rate_cols = rates["movieId"]
        table = pd.concat([table, movie_rates], axis=1)
        cols = cols + rate_cols
    features = user + movie

    # rating_binary (and rating, with keep_rating) from one node: see ops.RatingTargets.
    targets = ["rating"] >> RatingTargets(rating_threshold, keep=keep_rating)
    if count_features:
        features = features + (user_codes >> ItemGather(*count_table("userId", user_counts)))
    if target_encoding and rates is not None:
        features = features + (user_codes >> ItemGather(*rates["userId"]))
    elif target_encoding:
        te = ["userId", "movieId"] >> ops.TargetEncoding(
            targets["rating_binary"],
            kfold=target_encoding_folds,
            fold_seed=seed,
            p_smooth=TE_SMOOTHING,
            out_path=str(out_path),
        )
        features = features + (te >> ops.AddTags([Tags.CONTINUOUS]))
    outputs = features + targets
    # Last, passing the other columns through: the item columns land right after movieId.
    outputs = outputs >> ItemGather(table, cols, after="movieId")
    return nvt.Workflow(outputs, client=client)
