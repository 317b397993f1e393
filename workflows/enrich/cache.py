"""Per-movie results, and the journal that makes enrich resumable.

Fetching posters and synopses for 60k movies takes hours and will be interrupted. Each finished
movie is appended to a JSON-lines journal (flushed at once, fsync'd in batches), so a rerun
skips what is settled and an interrupted run continues where it stopped; the final tables are
rebuilt from the journal. The last record of a movie wins. A torn last line (a crash mid-write)
is cut off; damage anywhere else is reported rather than guessed around.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmrec.errors import MmrecError

FOUND, MISSING, FAILED = "found", "missing", "failed"
STATUSES = (FOUND, MISSING, FAILED)


@dataclass(frozen=True)
class MovieKeys:
    """One movie as the sources see it: its ids from links.parquet."""

    movieId: int
    imdbId: int | None = None
    tmdbId: int | None = None


@dataclass
class Fetched:
    """What a source found for one movie, before the poster bytes are validated and stored."""

    poster: str = MISSING
    poster_reason: str | None = None
    poster_bytes: bytes | None = None
    synopsis: str = MISSING
    synopsis_reason: str | None = None
    text: str | None = None
    retry: bool = False  # a later run may do better (transient failure): fetch again
    # failed images count as transient for network sources; for local files they are settled
    retry_bad_image: bool = True

    @classmethod
    def both(cls, status: str, reason: str, *, retry: bool) -> Fetched:
        """Poster and synopsis share one outcome (no id, lookup failed, 404)."""
        return cls(status, reason, None, status, reason, None, retry)


@dataclass
class Record:
    """One journal line: the settled outcome for one movie."""

    movieId: int
    source: str
    fingerprint: str
    poster: str
    poster_reason: str | None
    poster_file: str | None
    synopsis: str
    synopsis_reason: str | None
    text: str | None
    retry: bool
    at: float

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        return cls(**{k: obj.get(k) for k in cls.__dataclass_fields__})


class Journal:
    """Append-only JSON-lines log of Records for one source of one dataset."""

    def __init__(self, path: Path, fsync_every: int = 64) -> None:
        self.path = path
        self.fsync_every = fsync_every
        self._f: Any = None
        self._unsynced = 0

    def load(self) -> dict[int, Record]:
        """The latest record per movieId; cuts a torn final line off the file first."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        records: dict[int, Record] = {}
        for lineno, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = Record.from_json(json.loads(line))
                records[int(rec.movieId)] = rec
            except (ValueError, TypeError) as exc:
                raise MmrecError(
                    f"{self.path}: line {lineno} is not a valid journal record ({exc}); "
                    "delete the file or rerun with --force to start over"
                ) from None
        return records

    def reset(self) -> None:
        self.close()
        if self.path.exists():
            self.path.unlink()

    def open(self) -> None:
        """Create the file now: its existence marks the dataset's outputs as enrich's own."""
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (appended per movie)

    def append(self, rec: Record) -> None:
        self.open()
        self._f.write(json.dumps(asdict(rec), ensure_ascii=False) + "\n")
        self._f.flush()
        self._unsynced += 1
        if self._unsynced >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        if self._f is not None and self._unsynced:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._unsynced = 0

    def close(self) -> None:
        if self._f is not None:
            self.sync()
            self._f.close()
            self._f = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
