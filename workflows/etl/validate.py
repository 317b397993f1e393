"""Input checks before any heavy work, so bad files fail fast with the file and field named."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.errors import MmrecError
from workflows.data.schema import MOVIES, RATINGS, validate_table

REQUIRED_RATINGS = [f.name for f in RATINGS]


@dataclass(frozen=True)
class Catalogue:
    """The movie catalogue (item metadata): small, so it is held in memory."""

    movie_ids: np.ndarray  # int32, sorted ascending, unique
    genres: list[list[str]]  # per movie, aligned with movie_ids
    years: np.ndarray  # float64 with NaN for unknown years, aligned with movie_ids

    @property
    def genre_vocab(self) -> list[str]:
        return sorted({g for gs in self.genres for g in gs})

    @property
    def year_vocab(self) -> list[int]:
        return sorted({int(y) for y in self.years if not np.isnan(y)})


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise MmrecError(f"{path}: {what} not found (run `mmrec data` first)")


def check_ratings(path: Path) -> int:
    """Check the ratings file's columns and types from its footer; return its row count."""
    _require(path, "ratings file")
    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise MmrecError(f"{path}: not a readable Parquet file ({exc})") from exc
    validate_table(schema, RATINGS, path)
    return meta.num_rows


def load_catalogue(path: Path) -> Catalogue:
    """Read and check movies.parquet; duplicate or null movie ids are errors (ids must be keys)."""
    _require(path, "movies file")
    try:
        table = pq.read_table(path, columns=["movieId", "year", "genres"])
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        schema = pq.read_schema(path) if path.is_file() else None
        if schema is not None:
            validate_table(schema, MOVIES, path)
        raise MmrecError(f"{path}: cannot read movies ({exc})") from exc
    for name in ("movieId", "year", "genres"):
        validate_table(table.select([name]).schema, pa.schema([MOVIES.field(name)]), path)
    ids = table.column("movieId")
    if ids.null_count:
        raise MmrecError(f"{path}: column 'movieId' has {ids.null_count} null values")
    ids_np = ids.to_numpy().astype(np.int32, copy=False)
    order = np.argsort(ids_np, kind="stable")
    sorted_ids = ids_np[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if dup.size:
        raise MmrecError(
            f"{path}: movieId {int(sorted_ids[dup[0]])} appears more than once "
            f"({dup.size} duplicate ids); movies must be unique"
        )
    genres = table.column("genres").to_pylist()
    years = table.column("year").to_numpy(zero_copy_only=False).astype(np.float64)
    return Catalogue(
        movie_ids=sorted_ids,
        genres=[list(genres[i] or []) for i in order],
        years=years[order],
    )


def check_feature_store(path: Path, modalities: tuple[str, ...] | None) -> dict[str, int]:
    """Return {modality: dim} of the feature store, checking the contract's column types."""
    schema = pq.read_schema(path)
    if schema.get_field_index("movieId") < 0:
        raise MmrecError(f"{path}: missing column 'movieId'")
    if not schema.field("movieId").type.equals(pa.int32()):
        raise MmrecError(
            f"{path}: column 'movieId' has type {schema.field('movieId').type}, expected int32"
        )
    found: dict[str, int] = {}
    for field in schema:
        if not field.name.endswith("_embedding"):
            continue
        m = field.name[: -len("_embedding")]
        if not pa.types.is_fixed_size_list(field.type) or not pa.types.is_float32(
            field.type.value_type
        ):
            raise MmrecError(
                f"{path}: column {field.name!r} has type {field.type}, "
                "expected fixed_size_list<float32>[d]"
            )
        if schema.get_field_index(f"has_{m}") < 0:
            raise MmrecError(f"{path}: column 'has_{m}' missing beside {field.name!r}")
        found[m] = field.type.list_size
    if modalities is None:
        return found
    missing = [m for m in modalities if m not in found]
    if missing:
        raise MmrecError(
            f"{path}: no '{missing[0]}_embedding' column (modalities present: "
            f"{', '.join(sorted(found)) or 'none'})"
        )
    return {m: found[m] for m in modalities}
