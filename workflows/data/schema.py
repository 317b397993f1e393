"""The one typed schema every MovieLens variant (and the synthetic data) is converted to.

Later stages rely on these exact types; the converters and the generator cast to them and
`validate_table` checks them, naming the file and the field when they differ.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

NO_GENRES = "(no genres listed)"  # MovieLens' genres value for a movie without any

RATINGS = pa.schema(
    [
        pa.field("userId", pa.int32(), nullable=False),
        pa.field("movieId", pa.int32(), nullable=False),
        pa.field("rating", pa.float32(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
    ]
)

MOVIES = pa.schema(
    [
        pa.field("movieId", pa.int32(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("year", pa.int16(), nullable=True),
        pa.field("genres", pa.list_(pa.string()), nullable=False),
    ]
)

LINKS = pa.schema(
    [
        pa.field("movieId", pa.int32(), nullable=False),
        pa.field("imdbId", pa.int64(), nullable=True),
        pa.field("tmdbId", pa.int64(), nullable=True),
    ]
)

TAGS = pa.schema(
    [
        pa.field("userId", pa.int32(), nullable=False),
        pa.field("movieId", pa.int32(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
    ]
)

SYNOPSES = pa.schema(
    [
        pa.field("movieId", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)

SCHEMAS = {"ratings": RATINGS, "movies": MOVIES, "links": LINKS, "tags": TAGS, "synopses": SYNOPSES}


def schema_description(schema: pa.Schema) -> dict[str, str]:
    """Field name to type string, for manifests."""
    return {f.name: str(f.type) for f in schema}


def validate_table(table: pa.Table | pa.Schema, expected: pa.Schema, source: str | Path) -> None:
    """Raise MmrecError naming `source` and the field when `table` does not match `expected`."""
    from mmrec.errors import MmrecError

    actual = table if isinstance(table, pa.Schema) else table.schema
    for field in expected:
        idx = actual.get_field_index(field.name)
        if idx < 0:
            raise MmrecError(f"{source}: missing column {field.name!r}")
        if not actual.field(idx).type.equals(field.type):
            raise MmrecError(
                f"{source}: column {field.name!r} has type {actual.field(idx).type}, "
                f"expected {field.type}"
            )
