"""The file contracts between stages, each defined once: every writer and reader imports it.

Stages exchange files only, so the names here are the interfaces: the dataset layout
(`<data-dir>/<dataset>/`), the layout of one ETL run and of one training run, Categorify's
reserved ids, the column names the models read, the modalities and their one order, and the
keys of the summaries a later stage reads. Rename something here and every stage follows;
a test (tests/test_contracts.py) checks the few copies that must exist (the ETL's operator
module is pickled into saved workflows by value, so it cannot import this module).

This is the core: it imports nothing from the stages or the command line, and nothing heavy
(numpy and pandas are imported inside the two functions that need them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

# ---------------------------------------------------------------------------------------------
# Categorify's ids: 0 padding, 1 null, 2 out of vocabulary, then the vocabulary in sorted order.
PADDING_ID = 0
NULL_ID = 1
OOV_ID = 2
FIRST_ID = 3  # the first real id; also the number of reserved ids
RESERVED_IDS = FIRST_ID

# ---------------------------------------------------------------------------------------------
# Columns of the ETL's output the models and the export read.
USER = "userId"
ITEM = "movieId"
LABEL = "rating_binary"  # int32, rating > threshold
RATING = "rating"  # raw rating, kept as a regression target unless --no-rating
GENRES = "genres"
YEAR = "year"

# Pretrained modalities, in the one order used everywhere (feature store columns, ETL matrices,
# model inputs, run names such as `text+image`).
MODALITIES = ("text", "image")


EMBEDDING_SUFFIX = "_embedding"


# the GroupLens archives `mmrec data download` knows (workflows/data/variants.py describes each;
# a test checks the two agree): any other dataset name is a generated synthetic one
MOVIELENS_VARIANTS = ("ml-100k", "ml-1m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small")


def modality_label(modalities: Sequence[str]) -> str:
    """How run names spell a modality set: 'text+image', or 'none' for ids only."""
    return "+".join(modalities) if modalities else "none"


def train_run_name(etl_run: str, model: str, modalities: Sequence[str], control: str) -> str:
    """A training run's default name, `<etl-run>.<model>.<modalities>.<control>`."""
    return f"{etl_run}.{model}.{modality_label(modalities)}.{control}"


def seed_run_name(name: str, seed: int, first_seed: int) -> str:
    """The run name of one seed of a configuration: the first seed keeps the plain name, so a
    run trained once is reused when more seeds are asked for later."""
    return name if seed == first_seed else f"{name}.seed{seed}"


def embedding_column(modality: str) -> str:
    """`<m>_embedding`: the pretrained vector column (feature store, join Parquet, model input)."""
    return f"{modality}{EMBEDDING_SUFFIX}"


FLAG_PREFIX = "has_"


def flag_column(modality: str) -> str:
    """`has_<m>`: 1 when the movie has the modality, 0 when its vector is the zero fill."""
    return f"{FLAG_PREFIX}{modality}"


def gather_rows(table: Any, ids: Any) -> Any:
    """`table[ids]` for an id-aligned table (row k = encoded id k), the one OOV rule.

    Ids outside the table (negative, or a category added after the table was written) take the
    out-of-vocabulary row, whose values the ETL wrote as zeros with flag 0. Used by every numpy
    gather (serving's lookup operator, the in-process reference scorer); the training loader
    gathers in TensorFlow from the same tables with ids the ETL wrote, all inside the table.
    """
    import numpy as np

    ids = np.asarray(ids).reshape(-1).astype(np.int64, copy=False)
    ids = np.where((ids >= 0) & (ids < table.shape[0]), ids, OOV_ID)
    return np.take(table, ids, axis=0)


# ---------------------------------------------------------------------------------------------
# Layouts.
DEFAULT_DATA_DIR = "./data"
DATA_DIR_ENV = "MMREC_DATA_DIR"
SUMMARY = "summary.json"  # every stage's record; written last, so it marks the output finished


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))


def _under_root(name: str, doc: str | None = None) -> property:
    """A read-only path attribute: `root / name`."""
    return property(lambda self: self.root / name, doc=doc or f"`{name}`")


@dataclass(frozen=True)
class EtlRunPaths:
    """One ETL run, `<dataset>/etl/<run-name>/` (docs/contracts.md says what each file holds)."""

    root: Path
    train = _under_root("train")
    valid = _under_root("valid")
    workflow = _under_root("workflow")
    categories = _under_root("categories")
    embeddings = _under_root("embeddings")
    summary = _under_root(SUMMARY)

    @property
    def name(self) -> str:
        return self.root.name

    def vocabulary(self, column: str) -> Path:
        """Categorify's `unique.<col>.parquet`: index = encoded id."""
        return self.categories / f"unique.{column}.parquet"

    def matrix(self, modality: str) -> Path:
        """float32 [cardinality of movieId, d], row i = encoded movie id i."""
        return self.embeddings / f"{modality}.npy"

    def flags(self, modality: str) -> Path:
        """int8 [cardinality of movieId]: 1 where the movie has the modality."""
        return self.embeddings / f"{flag_column(modality)}.npy"


@dataclass(frozen=True)
class TrainRunPaths:
    """One training run, `<dataset>/runs/<run-name>/`, published whole by `mmrec train`."""

    root: Path
    model = _under_root("model", "the best epoch's SavedModel (DLRM, or the whole two-tower)")
    query_tower = _under_root("query_tower", "two-tower: the query tower's SavedModel")
    item_tower = _under_root("item_tower", "two-tower: the item tower's SavedModel")
    item_log_popularity = _under_root("item_log_popularity.npy")
    checkpoints = _under_root("checkpoints")
    tensorboard = _under_root("tensorboard")
    history = _under_root("history.json")
    metrics = _under_root("metrics.json")
    calibration = _under_root("calibration.json", "DLRM: the Platt scaling fitted after training")
    config = _under_root("config.json", "the resolved options: what made the run (mmrec.done)")
    summary = _under_root(SUMMARY)

    @property
    def name(self) -> str:
        return self.root.name


@dataclass(frozen=True)
class DatasetPaths:
    """The files of one dataset's folder, `<data-dir>/<dataset>/`."""

    data_dir: Path
    name: str
    # data stage
    ratings = _under_root("ratings.parquet")
    movies = _under_root("movies.parquet")
    links = _under_root("links.parquet")
    tags = _under_root("tags.parquet")
    manifest = _under_root("manifest.json")
    # enrich stage (the synthetic generator writes the same files)
    posters = _under_root("posters")
    synopses = _under_root("synopses.parquet")
    enrich_report = _under_root("enrich_report.parquet")
    enrich_cache = _under_root("_enrich_cache")
    # features stage
    features = _under_root("features")
    feature_store = _under_root("feature_store.parquet")
    # etl / train / evaluate / report / export stages
    etl = _under_root("etl")
    runs = _under_root("runs")
    evaluation = _under_root(
        "evaluation",
        "`mmrec evaluate`'s documents, `<etl-run>.json` each; `mmrec report` reads them",
    )
    export = _under_root("export")
    logs = _under_root("logs", "each command's full log, `<stage>.log` (mmrec/console.py)")

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str] | None, name: str) -> DatasetPaths:
        return cls(Path(data_dir) if data_dir is not None else default_data_dir(), name)

    @property
    def root(self) -> Path:
        return self.data_dir / self.name

    @property
    def downloads(self) -> Path:
        """Archives as downloaded (kept so a rerun with --force need not fetch again)."""
        return self.data_dir / "_downloads"

    def modality_embeddings(self, modality: str) -> Path:
        return self.features / f"{modality}.parquet"

    def etl_run(self, name: str) -> EtlRunPaths:
        return EtlRunPaths(self.etl / name)

    def run(self, name: str) -> TrainRunPaths:
        return TrainRunPaths(self.runs / name)

    def evaluation_of(self, etl_run: str) -> Path:
        return self.evaluation / f"{etl_run}.json"

    def run_evaluation(self, run: str) -> Path:
        """One run's cached metrics (its scores beside it, `.npz`): outside the run folder,
        which train published whole."""
        return self.evaluation / "runs" / f"{run}.json"

    def baseline_evaluation(self, etl_run: str) -> Path:
        """The baselines' cached metrics for one ETL run (their scores beside it, `.npz`)."""
        return self.evaluation / "baselines" / f"{etl_run}.json"


# The export's folder, `<dataset>/export/<run>/`: `triton/` (the model repository, whose entry
# point is ENTRY_MODEL), `retrieval/` (two-tower: items.parquet and the top-k index), and
# EXPORT_SUMMARY (what was exported from where).
ENTRY_MODEL = "executor_model"
EXPORT_SUMMARY = "export.json"


# ---------------------------------------------------------------------------------------------
# Summary keys a later stage reads (the summaries hold more, for people).
PARAMETERS = "parameters"  # what made an output (mmrec.done): same: skip; other: an error
INPUTS = "inputs"  # digests of the upstream files a derived output was made from (mmrec.done)


class SplitInfo(TypedDict, total=False):
    """`summary.json["split"]` of an ETL run."""

    kind: str  # random | temporal | cold-items
    cold_movie_ids: list[int]  # raw movieIds held out of train (cold-items only)
    cold_movie_encoded_ids: list[int]  # the same movies' encoded ids, same order


class EtlSummary(TypedDict, total=False):
    """`etl/<run>/summary.json`: the keys read by train, evaluate and export."""

    dataset: str
    run_name: str
    path: str
    split: SplitInfo
    rows: dict[str, int]  # train / valid
    cardinalities: dict[str, int]
    parameters: dict[str, Any]
    skipped: bool


class TrainSummary(TypedDict, total=False):
    """`runs/<run>/summary.json`: the keys read by evaluate, report and export."""

    run: str
    path: str
    model: str  # dlrm | two-tower
    modalities: list[str]
    control: str
    etl_run: str
    metrics: dict[str, Any]
    skipped: bool


def read_vocabulary(etl: EtlRunPaths, column: str = ITEM) -> tuple[Any, Any]:
    """(values, encoded ids) of Categorify's vocabulary for an id column, nulls dropped, int64."""
    import numpy as np
    import pandas as pd

    uniq = pd.read_parquet(etl.vocabulary(column))
    raw = uniq[column].to_numpy()
    enc = uniq.index.to_numpy()
    ok = ~pd.isna(raw)
    return raw[ok].astype(np.int64), enc[ok].astype(np.int64)
