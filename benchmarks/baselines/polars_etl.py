"""Polars lazy + streaming engine: the same split and encodings, never all rows in memory."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from benchmarks.baselines.common import SEED, THRESHOLD, VALID_FRACTION, encoded_movies


def run(root: Path, out: Path) -> dict[str, int]:
    movies = pl.from_pandas(encoded_movies(root)).lazy()
    ratings = (
        pl.scan_parquet(root / "ratings.parquet")
        .select("userId", "movieId", "rating")
        .with_row_index("row")
        .with_columns(
            valid=(pl.col("row").hash(SEED) % 1_000_000) < int(VALID_FRACTION * 1_000_000)
        )
    )
    users = (
        ratings.filter(~pl.col("valid"))
        .select("userId")
        .unique()
        .sort("userId")
        .with_row_index("user", offset=3)
        .collect(engine="streaming")
        .lazy()
    )
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, keep in (("train", ~pl.col("valid")), ("valid", pl.col("valid"))):
        query = (
            ratings.filter(keep)
            .join(movies, on="movieId", how="left")
            .join(users, on="userId", how="left")
            .select(
                pl.col("user").fill_null(2).cast(pl.Int64).alias("userId"),
                pl.col("movie").alias("movieId"),
                "genres",
                "year",
                (pl.col("rating") > THRESHOLD).cast(pl.Int32).alias("rating_binary"),
                "rating",
            )
        )
        query.sink_parquet(out / f"{name}.parquet", engine="streaming")
        rows[name] = pl.scan_parquet(out / f"{name}.parquet").select(pl.len()).collect().item()
    return rows
