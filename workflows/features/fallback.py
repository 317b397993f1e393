"""The text each movie is embedded from: its synopsis, or a fallback built from title, genres, tags.

Every movie gets a text vector, so a movie without a synopsis is still placed near similar movies
by what MovieLens knows about it; the fallback is recorded so nobody mistakes it for a synopsis.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.errors import MmrecError
from mmrec.paths import DatasetPaths
from workflows.data.schema import NO_GENRES


@dataclass(frozen=True)
class MovieText:
    movie_id: int
    text: str
    fallback: bool


def fallback_text(title: str, year: int | None, genres: list[str], tags: list[str]) -> str:
    """A sentence-like text from the catalogue fields; the year is added unless the title has it."""
    head = (title or "").strip()
    if year is not None and f"({year})" not in head:
        head = f"{head} ({year})".strip()
    parts = [head + "." if head else ""]
    real_genres = [g for g in genres if g and g != NO_GENRES]
    if real_genres:
        parts.append("Genres: " + ", ".join(real_genres) + ".")
    if tags:
        parts.append("Tags: " + ", ".join(tags) + ".")
    return " ".join(p for p in parts if p)


def read_table(path: Path, columns: list[str]) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise MmrecError(f"{path}: cannot read Parquet: {exc}") from exc
    for col in columns:
        if col not in table.column_names:
            raise MmrecError(f"{path}: missing column {col!r}")
    return table.select(columns)


def read_movies(paths: DatasetPaths) -> pa.Table:
    if not paths.movies.exists():
        raise MmrecError(
            f"{paths.movies} not found: run `mmrec data` for dataset {paths.name!r} first"
        )
    movies = read_table(paths.movies, ["movieId", "title", "year", "genres"])
    ids = movies.column("movieId").to_pylist()
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise MmrecError(f"{paths.movies}: movieId {dup} appears more than once")
    return movies


def top_tags(paths: DatasetPaths, max_tags: int) -> dict[int, list[str]]:
    """Per movie its most frequent tags (case-insensitive, ties by name), from tags.parquet."""
    if max_tags <= 0 or not paths.tags.exists():
        return {}
    tags = read_table(paths.tags, ["movieId", "tag"])
    counts: dict[int, Counter] = {}
    spelling: dict[tuple[int, str], str] = {}
    pairs = zip(tags.column("movieId").to_pylist(), tags.column("tag").to_pylist(), strict=True)
    for mid, tag in pairs:
        if tag is None or not str(tag).strip():
            continue
        tag = " ".join(str(tag).split())
        key = tag.lower()
        counts.setdefault(mid, Counter())[key] += 1
        spelling.setdefault((mid, key), tag)
    return {
        mid: [spelling[(mid, k)] for k, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))][
            :max_tags
        ]
        for mid, c in counts.items()
    }


def movie_texts(paths: DatasetPaths, max_tags: int) -> tuple[list[MovieText], dict]:
    """The text for every movie of movies.parquet, in movieId order, and counts about them."""
    movies = read_movies(paths)
    synopses: dict[int, str] = {}
    unknown = 0
    known = set(movies.column("movieId").to_pylist())
    if paths.synopses.exists():
        table = read_table(paths.synopses, ["movieId", "text"])
        for row, (mid, text) in enumerate(
            zip(table.column("movieId").to_pylist(), table.column("text").to_pylist(), strict=False)
        ):
            if mid is None:
                raise MmrecError(f"{paths.synopses}: row {row} has no movieId")
            if mid in synopses:
                raise MmrecError(f"{paths.synopses}: movieId {mid} has more than one synopsis")
            if mid not in known:
                unknown += 1
                continue
            synopses[mid] = text or ""
    tags = top_tags(paths, max_tags)
    items: list[MovieText] = []
    cols = [movies.column(c).to_pylist() for c in ("movieId", "title", "year", "genres")]
    for mid, title, year, genres in sorted(zip(*cols, strict=True), key=lambda r: r[0]):
        text = synopses.get(mid, "").strip()
        if text:
            items.append(MovieText(mid, text, False))
        else:
            items.append(
                MovieText(mid, fallback_text(title, year, genres or [], tags.get(mid, [])), True)
            )
    stats = {
        "movies": len(items),
        "synopses": sum(not i.fallback for i in items),
        "fallback": sum(i.fallback for i in items),
        "synopses_for_unknown_movies": unknown,
    }
    return items, stats
