"""Where every stage reads and writes: one run directory per dataset, `<data-dir>/<dataset>/`.

Stages exchange files only, so this layout is the contract between them. Change a name here and
every stage follows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "./data"
DATA_DIR_ENV = "MMREC_DATA_DIR"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))


@dataclass(frozen=True)
class DatasetPaths:
    """The files of one dataset's run directory."""

    data_dir: Path
    name: str

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str] | None, name: str) -> DatasetPaths:
        return cls(Path(data_dir) if data_dir is not None else default_data_dir(), name)

    @property
    def root(self) -> Path:
        return self.data_dir / self.name

    # data stage
    @property
    def ratings(self) -> Path:
        return self.root / "ratings.parquet"

    @property
    def movies(self) -> Path:
        return self.root / "movies.parquet"

    @property
    def links(self) -> Path:
        return self.root / "links.parquet"

    @property
    def tags(self) -> Path:
        return self.root / "tags.parquet"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def downloads(self) -> Path:
        """Archives as downloaded (kept so a rerun with --force need not fetch again)."""
        return self.data_dir / "_downloads"

    # enrich stage (the synthetic generator writes the same files)
    @property
    def posters(self) -> Path:
        return self.root / "posters"

    @property
    def synopses(self) -> Path:
        return self.root / "synopses.parquet"

    @property
    def enrich_report(self) -> Path:
        return self.root / "enrich_report.parquet"

    @property
    def enrich_cache(self) -> Path:
        return self.root / "_enrich_cache"

    # features stage
    @property
    def features(self) -> Path:
        return self.root / "features"

    def modality_embeddings(self, modality: str) -> Path:
        return self.features / f"{modality}.parquet"

    @property
    def feature_store(self) -> Path:
        return self.root / "feature_store.parquet"

    # etl / train / export stages
    @property
    def etl(self) -> Path:
        return self.root / "etl"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def export(self) -> Path:
        return self.root / "export"
