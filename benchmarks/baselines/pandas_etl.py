"""Plain pandas: the same split and encodings as `mmrec etl`, all rows in memory at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.baselines.common import SEED, THRESHOLD, VALID_FRACTION, encoded_movies
from mmrec.contracts import FIRST_ID, OOV_ID


def run(root: Path, out: Path) -> dict[str, int]:
    ratings = pd.read_parquet(root / "ratings.parquet", columns=["userId", "movieId", "rating"])
    movies = encoded_movies(root)
    is_valid = np.random.default_rng(SEED).random(len(ratings)) < VALID_FRACTION
    users = ratings["userId"].to_numpy()
    train_users = np.unique(users[~is_valid])
    pos = np.searchsorted(train_users, users).clip(max=len(train_users) - 1)
    user_code = np.where(train_users[pos] == users, pos + FIRST_ID, OOV_ID)
    idx = np.searchsorted(movies["movieId"].to_numpy(), ratings["movieId"].to_numpy())
    genres = movies["genres"].to_numpy()[idx]
    frame = pd.DataFrame(
        {
            "userId": user_code,
            "movieId": movies["movie"].to_numpy()[idx],
            "genres": genres,
            "year": movies["year"].to_numpy()[idx],
            "rating_binary": (ratings["rating"].to_numpy() > THRESHOLD).astype(np.int32),
            "rating": ratings["rating"].to_numpy(),
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, mask in (("train", ~is_valid), ("valid", is_valid)):
        part = frame[mask]
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, out / f"{name}.parquet")
        rows[name] = len(part)
    return rows
