"""Users' own posters and plots as an enrich source: an image folder and a table of texts.

Images are named by the chosen key (movieId, imdbId or tmdbId): 123.jpg, tt0114709.jpg, 862.png.
The texts come from a CSV/TSV, JSON-lines or Parquet table with a column named like the key and a
text column. Ambiguity is an error, never a guess: two images or two texts for one key stop the
run naming the files or rows. Files and rows whose key matches no movie are listed in the
summary, since they usually mean the wrong --key or a typo.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmrec.config import EnrichConfig
from mmrec.errors import MmrecError
from workflows.enrich.cache import FAILED, FOUND, MISSING, Fetched, MovieKeys

KEYS = ("movieId", "imdbId", "tmdbId")
_INT = re.compile(r"^\d+$")
_IMDB = re.compile(r"^(?:tt)?(\d+)$", re.IGNORECASE)


def parse_key(value: Any, key: str) -> int:
    """An id from a file name or a table cell (imdbIds may carry 'tt'); ValueError if it is none."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(value)
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        m = _IMDB.match(text) if key == "imdbId" else _INT.match(text)
        if m:
            return int(m.group(1) if key == "imdbId" else text)
    raise ValueError(value)


def show_key(key: str, value: int) -> str:
    return f"tt{value:07d}" if key == "imdbId" else str(value)


class LocalSource:
    """Posters and texts from the user's files, matched to movies by `cfg.key`."""

    name = "local"

    def __init__(self, cfg: EnrichConfig, movies: list[MovieKeys]) -> None:
        if cfg.key not in KEYS:
            raise MmrecError(f"--key must be one of {', '.join(KEYS)}, not {cfg.key!r}")
        if cfg.local_images is None and cfg.local_texts is None:
            raise MmrecError("--source local needs --images DIR and/or --texts FILE")
        self.key = cfg.key
        self.max_image_bytes = cfg.max_image_bytes
        self.images_dir = cfg.local_images
        self.texts_path = cfg.local_texts
        known = {getattr(m, cfg.key) for m in movies} - {None}
        self.images: dict[int, Path] = {}
        self.texts: dict[int, str | None] = {}
        self.unknown: dict[str, list[str]] = {"images": [], "texts": []}
        if self.images_dir is not None:
            self.images = index_images(Path(self.images_dir), cfg.key, self.unknown["images"])
        if self.texts_path is not None:
            self.texts = read_texts(Path(self.texts_path), cfg.key, cfg.text_column)
        self.unknown["images"] += [p.name for k, p in self.images.items() if k not in known]
        self.unknown["texts"] += [show_key(self.key, k) for k in self.texts if k not in known]
        self.unknown = {k: sorted(v) for k, v in self.unknown.items()}

    def fingerprint(self, movie: MovieKeys) -> str:
        """Changes when the movie's image file or text changes, so a rerun picks edits up."""
        k = getattr(movie, self.key)
        img = self.images.get(k) if k is not None else None
        img_part = "-"
        if img is not None:
            st = img.stat()
            img_part = f"{img.name}:{st.st_size}:{st.st_mtime_ns}"
        text = self.texts.get(k) if k is not None else None
        text_part = hashlib.sha1(text.encode()).hexdigest()[:16] if text else "-"
        return f"local:{self.key}={k}:{img_part}:{text_part}"

    def fetch(self, movie: MovieKeys) -> Fetched:
        k = getattr(movie, self.key)
        if k is None:
            out = Fetched.both(MISSING, f"no {self.key}", retry=False)
            out.retry_bad_image = False
            return out
        out = Fetched(retry_bad_image=False)
        if self.images_dir is None:
            out.poster_reason = "no image folder given"
        elif k not in self.images:
            out.poster_reason = f"no image file named by its {self.key}"
        else:
            path = self.images[k]
            try:
                size = path.stat().st_size
                if size > self.max_image_bytes:
                    limit = self.max_image_bytes
                    out.poster = FAILED
                    out.poster_reason = f"image of {size:,} bytes exceeds the limit of {limit:,}"
                else:
                    out.poster, out.poster_bytes = FOUND, path.read_bytes()
            except OSError as exc:
                out.poster, out.poster_reason = FAILED, f"cannot read {path.name}: {exc.strerror}"
        if self.texts_path is None:
            out.synopsis_reason = "no text table given"
        elif k not in self.texts:
            out.synopsis_reason = "no row in the text table"
        elif not self.texts[k]:
            out.synopsis_reason = "empty text"
        else:
            out.synopsis, out.text = FOUND, self.texts[k]
        return out


def index_images(folder: Path, key: str, unnamed: list[str]) -> dict[int, Path]:
    """key -> image file in `folder` (not recursive); names that are no key go to `unnamed`."""
    if not folder.is_dir():
        raise MmrecError(f"{folder}: image folder not found")
    by_key: dict[int, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            k = parse_key(path.name.split(".", 1)[0], key)
        except ValueError:
            unnamed.append(path.name)
            continue
        by_key.setdefault(k, []).append(path)
    for k, paths in by_key.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise MmrecError(
                f"{folder}: {len(paths)} images for {key} {show_key(key, k)} ({names}); keep one"
            )
    return {k: paths[0] for k, paths in by_key.items()}


def read_texts(path: Path, key: str, text_column: str) -> dict[int, str | None]:
    """key -> text (None when empty) from a CSV/TSV, JSON-lines or Parquet table."""
    if not path.is_file():
        raise MmrecError(f"{path}: text table not found")
    seen: dict[int, list[str]] = {}
    texts: dict[int, str | None] = {}
    for where, raw_key, raw_text in _rows(path, key, text_column):
        if raw_key is None or (isinstance(raw_key, str) and not raw_key.strip()):
            raise MmrecError(f"{path}: {where}: empty {key}")
        try:
            k = parse_key(raw_key, key)
        except ValueError:
            raise MmrecError(f"{path}: {where}: {key} {raw_key!r} is not a valid {key}") from None
        if raw_text is not None and not isinstance(raw_text, str):
            raise MmrecError(
                f"{path}: {where}: column {text_column!r} must hold text, got {raw_text!r:.40}"
            )
        seen.setdefault(k, []).append(where)
        texts[k] = (raw_text.strip() or None) if raw_text is not None else None
    dups = {k: w for k, w in seen.items() if len(w) > 1}
    if dups:
        k, wheres = next(iter(dups.items()))
        more = f" (and {len(dups) - 1} more duplicated keys)" if len(dups) > 1 else ""
        raise MmrecError(
            f"{path}: duplicate {key} {show_key(key, k)} in {' and '.join(wheres)}{more}; "
            "keep one text per movie"
        )
    return texts


def _rows(path: Path, key: str, text_column: str) -> Iterator[tuple[str, Any, Any]]:
    """(where, key, text) per row; `where` names the line (text files) or row (Parquet)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        yield from _csv_rows(path, key, text_column, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(path, key, text_column)
    elif suffix in (".parquet", ".pq"):
        yield from _parquet_rows(path, key, text_column)
    else:
        raise MmrecError(
            f"{path}: unknown text table type {suffix!r} (use .csv, .tsv, .jsonl or .parquet)"
        )


def _require(path: Path, columns: list[str], key: str, text_column: str) -> None:
    for col in (key, text_column):
        if col not in columns:
            raise MmrecError(f"{path}: no column {col!r} (columns: {', '.join(columns) or 'none'})")


def _csv_rows(path: Path, key: str, text_column: str, delimiter: str) -> Iterator[tuple]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        _require(path, list(reader.fieldnames or []), key, text_column)
        try:
            for row in reader:
                yield f"line {reader.line_num}", row.get(key), row.get(text_column)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise MmrecError(f"{path}: line {reader.line_num}: unreadable CSV ({exc})") from None


def _jsonl_rows(path: Path, key: str, text_column: str) -> Iterator[tuple]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise MmrecError(f"{path}: line {lineno}: invalid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise MmrecError(f"{path}: line {lineno}: expected a JSON object")
            for col in (key, text_column):
                if col not in obj:
                    raise MmrecError(f"{path}: line {lineno}: no field {col!r}")
            yield f"line {lineno}", obj[key], obj[text_column]


def _parquet_rows(path: Path, key: str, text_column: str) -> Iterator[tuple]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        _require(path, schema.names, key, text_column)
        table = pq.read_table(path, columns=[key, text_column])
    except MmrecError:
        raise
    except Exception as exc:
        raise MmrecError(f"{path}: unreadable Parquet ({exc})") from None
    keys = table.column(key).to_pylist()
    texts = table.column(text_column).to_pylist()
    for i, (k, t) in enumerate(zip(keys, texts, strict=True), start=1):
        yield f"row {i}", k, t
