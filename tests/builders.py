"""Builders the test modules share: small datasets in the stage contracts, and the ETL runs
they feed. Imported by name (`from builders import ...`); fixtures stay in the modules and
conftest.py, so no test module imports another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.config import EtlConfig
from workflows.data.schema import MOVIES, RATINGS

GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]


def write_inputs(
    data_dir: Path,
    name: str = "tiny",
    *,
    users: int = 40,
    movies: int = 50,
    ratings: int = 1500,
    seed: int = 0,
    dims: dict[str, int] | None = None,
) -> Path:
    """ratings/movies (+ feature store when `dims`) in the contract's schemas; return the root."""
    rng = np.random.default_rng(seed)
    root = data_dir / name
    root.mkdir(parents=True, exist_ok=True)
    movie_ids = np.sort(rng.choice(np.arange(1, 10 * movies), size=movies, replace=False))
    genres = [list(rng.choice(GENRES, size=rng.integers(0, 3), replace=False)) for _ in movie_ids]
    years = [None if rng.random() < 0.15 else int(rng.integers(1950, 2020)) for _ in movie_ids]
    pq.write_table(
        pa.table(
            {
                "movieId": movie_ids.astype(np.int32),
                "title": [f"Movie {i}" for i in movie_ids],
                "year": pa.array(years, pa.int16()),
                "genres": genres,
            },
            schema=MOVIES,
        ),
        root / "movies.parquet",
    )
    rated = movie_ids[: movies - 3]  # a few catalogue movies nobody rated
    u = rng.integers(1, users + 1, size=ratings).astype(np.int32)
    m = rng.choice(rated, size=ratings).astype(np.int32)
    pair = pd.DataFrame({"u": u, "m": m}).drop_duplicates()
    ts = rng.choice(
        np.arange(1_000_000_000, 1_000_000_000 + 50 * ratings), size=len(pair), replace=False
    )
    r = (rng.integers(1, 11, size=len(pair)) / 2).astype(np.float32)
    pq.write_table(
        pa.table(
            {
                "userId": pair.u.to_numpy(),
                "movieId": pair.m.to_numpy(),
                "rating": r,
                "timestamp": ts.astype(np.int64),
            },
            schema=RATINGS,
        ),
        root / "ratings.parquet",
        row_group_size=400,
    )
    if dims:
        write_store(root, movie_ids, dims, rng)
    return root


def write_store(root: Path, movie_ids: np.ndarray, dims: dict[str, int], rng) -> None:
    """A feature store: one movie missing entirely, some flagged missing with zero vectors."""
    ids = movie_ids[1:]
    cols: dict = {"movieId": pa.array(ids.astype(np.int32))}
    for mod, d in dims.items():
        has = (rng.random(ids.size) > 0.2).astype(np.int8)
        vec = rng.normal(size=(ids.size, d)).astype(np.float32) * has[:, None]
        cols[f"{mod}_embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), d)
        cols[f"has_{mod}"] = pa.array(has)
    pq.write_table(pa.table(cols), root / "feature_store.parquet")


def cfg(data_dir: Path, **kw) -> EtlConfig:
    kw.setdefault("dataset", "tiny")
    return EtlConfig(data_dir=data_dir, **kw)


def run(data_dir: Path, **kw) -> dict:
    from workflows.etl.stage import run_etl

    return run_etl(cfg(data_dir, **kw))


def read_split(run_dir: Path, split: str) -> pd.DataFrame:
    return pd.read_parquet(sorted((run_dir / split).glob("*.parquet")))


def decode(run_dir: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Map encoded ids back to raw values through the saved Categorify files."""
    cats = run_dir / "categories"
    out = pd.DataFrame(index=frame.index)
    for col in ("userId", "movieId", "year"):
        uniq = pd.read_parquet(cats / f"unique.{col}.parquet")[col]
        out[col] = frame[col].map(uniq)
    genres = pd.read_parquet(cats / "unique.genres.parquet")["genres"]
    out["genres"] = [sorted(genres[list(g)]) for g in frame["genres"]]
    return out


DIMS = {"text": 6, "image": 4}


def write_dataset(root: Path, users: int = 60, movies: int = 80, seed: int = 0) -> None:
    """Ratings driven by a hidden movie factor that the text vectors carry (and image does not)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, movies + 1, dtype=np.int32) * 3
    factor = rng.normal(size=(movies, 3))
    taste = rng.normal(size=(users, 3))
    pq.write_table(
        pa.table(
            {
                "movieId": ids,
                "title": [f"Movie {i}" for i in ids],
                "year": pa.array(rng.integers(1960, 2020, movies), pa.int16()),
                "genres": [["Drama"] if f[0] > 0 else ["Comedy"] for f in factor],
            },
            schema=MOVIES,
        ),
        root / "movies.parquet",
    )
    u = rng.integers(0, users, 4000)
    m = rng.integers(0, movies, 4000)
    keep = np.unique(u * movies + m, return_index=True)[1]
    u, m = u[keep], m[keep]
    signal = (taste[u] * factor[m]).sum(1) + rng.normal(scale=0.3, size=u.size)
    rating = np.where(signal > 0, 4.5, 2.0).astype(np.float32)
    pq.write_table(
        pa.table(
            {
                "userId": (u + 1).astype(np.int32),
                "movieId": ids[m],
                "rating": rating,
                "timestamp": np.arange(u.size, dtype=np.int64),
            },
            schema=RATINGS,
        ),
        root / "ratings.parquet",
    )
    cols: dict = {"movieId": pa.array(ids)}
    for mod, d in DIMS.items():
        has = np.ones(movies, np.int8)
        has[:3] = 0
        if mod == "text":
            vec = factor @ rng.normal(size=(3, d)) + rng.normal(scale=0.05, size=(movies, d))
        else:
            vec = rng.normal(size=(movies, d))
        vec = (vec * has[:, None]).astype(np.float32)
        cols[f"{mod}_embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), d)
        cols[f"has_{mod}"] = pa.array(has)
    pq.write_table(pa.table(cols), root / "feature_store.parquet")


def make_train_tiny(data_dir: Path, modes: tuple[str, ...] = ("lookup", "join")) -> Path:
    """`write_dataset` under `tiny/` plus its cold-items ETL runs in each embedding mode."""
    from workflows.etl.stage import run_etl

    write_dataset(data_dir / "tiny")
    for mode in modes:
        run_etl(
            EtlConfig(
                dataset="tiny",
                data_dir=data_dir,
                split="cold-items",
                cold_fraction=0.15,
                embeddings=mode,
                seed=1,
            )
        )
    return data_dir
