"""Which GroupLens MovieLens archives we know, and what is inside each.

The archives differ in layout (CSV with headers, `::`-separated Latin-1 `.dat`, the 100k
tab/pipe files), so each variant names its native format and the member files the converter
needs. Only those members are extracted: ml-25m's genome files alone are over 400 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmrec.errors import MmrecError

CSV = "csv"  # ml-latest(-small), ml-20m, ml-25m, ml-32m: ratings/movies/links/tags.csv, UTF-8
DAT = "dat"  # ml-1m: ratings.dat, movies.dat, users.dat, `::`-separated, Latin-1
ML100K = "100k"  # ml-100k: u.data (tab), u.item (`|`, Latin-1), u.genre

_CSV_FILES = {
    "ratings": "ratings.csv",
    "movies": "movies.csv",
    "links": "links.csv",
    "tags": "tags.csv",
}
_CSV_OPTIONAL = frozenset({"tags"})


@dataclass(frozen=True)
class Variant:
    """One downloadable archive: its name, native format and the member files to convert."""

    name: str
    format: str
    files: dict[str, str]  # role (ratings, movies, ...) -> file name inside the archive
    has_links: bool
    has_tags: bool
    # Roles the converter can do without (an archive written by `mmrec data archive` from a
    # dataset without tags has no tags.csv); GroupLens' own CSV archives always have them.
    optional: frozenset[str] = frozenset()

    @property
    def archive_name(self) -> str:
        return f"{self.name}.zip"

    def archive_url(self, base_url: str) -> str:
        return _join(base_url, self.archive_name)

    def checksum_url(self, base_url: str) -> str:
        return _join(base_url, f"{self.archive_name}.md5")


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("ml-latest-small", CSV, _CSV_FILES, True, True, _CSV_OPTIONAL),
        Variant(
            "ml-100k",
            ML100K,
            {"ratings": "u.data", "movies": "u.item", "genres": "u.genre"},
            has_links=False,
            has_tags=False,
        ),
        Variant(
            "ml-1m",
            DAT,
            # users.dat (demographics) is not converted: the shared schema has no users table.
            {"ratings": "ratings.dat", "movies": "movies.dat"},
            has_links=False,
            has_tags=False,
        ),
        Variant("ml-20m", CSV, _CSV_FILES, True, True, _CSV_OPTIONAL),
        Variant("ml-25m", CSV, _CSV_FILES, True, True, _CSV_OPTIONAL),
        Variant("ml-32m", CSV, _CSV_FILES, True, True, _CSV_OPTIONAL),
    )
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise MmrecError(f"unknown MovieLens variant {name!r}; known: {known}") from None


def _join(base_url: str, name: str) -> str:
    return base_url.rstrip("/") + "/" + name
