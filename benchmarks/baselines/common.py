"""What every baseline shares: the movie catalogue encoded once per movie (ids, genres, year)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 42
VALID_FRACTION = 0.2
THRESHOLD = 3.0


def encoded_movies(root: Path) -> pd.DataFrame:
    """movieId (raw), movie (3 + rank), genres (list of 3 + genre rank), year (null -> 1)."""
    movies = pd.read_parquet(root / "movies.parquet", columns=["movieId", "genres", "year"])
    movies = movies.sort_values("movieId").reset_index(drop=True)
    vocab = sorted({g for gs in movies["genres"] for g in gs})
    code = {g: i + 3 for i, g in enumerate(vocab)}
    years = movies["year"].astype("float64")
    year_vocab = np.unique(years.dropna().to_numpy())
    year_code = np.where(years.isna(), 1, np.searchsorted(year_vocab, years.fillna(0)) + 3)
    return pd.DataFrame(
        {
            "movieId": movies["movieId"].astype(np.int32),
            "movie": np.arange(3, 3 + len(movies), dtype=np.int64),
            "genres": [np.array([code[g] for g in gs], dtype=np.int64) for gs in movies["genres"]],
            "year": year_code.astype(np.int64),
        }
    )
