"""What every baseline shares: the movie catalogue encoded once per movie (ids, genres, year)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmrec.contracts import FIRST_ID, NULL_ID

SEED = 42
VALID_FRACTION = 0.2
THRESHOLD = 3.0


def encoded_movies(root: Path) -> pd.DataFrame:
    """movieId (raw), movie (FIRST_ID + rank), genres (FIRST_ID + genre rank each), year (null:
    NULL_ID), as Categorify encodes them (mmrec.contracts)."""
    movies = pd.read_parquet(root / "movies.parquet", columns=["movieId", "genres", "year"])
    movies = movies.sort_values("movieId").reset_index(drop=True)
    vocab = sorted({g for gs in movies["genres"] for g in gs})
    code = {g: i + FIRST_ID for i, g in enumerate(vocab)}
    years = movies["year"].astype("float64")
    year_vocab = np.unique(years.dropna().to_numpy())
    year_code = np.where(
        years.isna(), NULL_ID, np.searchsorted(year_vocab, years.fillna(0)) + FIRST_ID
    )
    return pd.DataFrame(
        {
            "movieId": movies["movieId"].astype(np.int32),
            "movie": np.arange(FIRST_ID, FIRST_ID + len(movies), dtype=np.int64),
            "genres": [np.array([code[g] for g in gs], dtype=np.int64) for gs in movies["genres"]],
            "year": year_code.astype(np.int64),
        }
    )
