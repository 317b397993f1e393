"""What the models read from an ETL run: schema selection, pretrained vectors, ablation controls.

The ETL hands over either `join` columns (`<m>_embedding` in the Parquet) or `lookup` matrices
(`embeddings/<m>.npy`, row = encoded movie id). Training treats both the same way: the model
sees a column `<m>_embedding` tagged EMBEDDING. In lookup mode, and for every control, the
column is gathered per batch from an id-aligned matrix in the data loader (one vectorised
`tf.gather`), so a control changes exactly the vectors and nothing else.

Controls exist to price a modality: `constant` gives every movie the same vector (the mean of the
real ones), `shuffled` gives each movie another movie's vector (a permutation of the rows of
movies that have one). A modality is worth what it adds over both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.config import parse_list
from mmrec.contracts import (
    FLAG_PREFIX,
    GENRES,
    ITEM,
    LABEL,
    MODALITIES,
    OOV_ID,
    RATING,
    USER,
    YEAR,
    EtlRunPaths,
    embedding_column,
    read_vocabulary,
)
from mmrec.errors import MmrecError

CONTROLS = ("none", "constant", "shuffled")


def parse_modalities(text: str | Sequence[str]) -> tuple[str, ...]:
    """'none' | 'text' | 'image' | 'text,image' -> a sorted tuple (empty for none)."""
    items = parse_list(text) if isinstance(text, str) else [s.strip() for s in text]
    items = [s for s in items if s and s != "none"]
    bad = [s for s in items if s not in MODALITIES]
    if bad:
        raise MmrecError(f"unknown modality {bad[0]!r}: choose from none, {', '.join(MODALITIES)}")
    return tuple(sorted(set(items), key=MODALITIES.index))


@dataclass
class EtlRun:
    """One ETL output folder, read once: paths, summary, schema, embedding matrices."""

    path: Path
    summary: dict[str, Any]
    schema: Any  # merlin.schema.Schema of train/
    matrices: dict[str, np.ndarray] = field(default_factory=dict)
    has: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def files(self) -> EtlRunPaths:
        return EtlRunPaths(self.path)

    @property
    def train_dir(self) -> Path:
        return self.files.train

    @property
    def valid_dir(self) -> Path:
        return self.files.valid

    @property
    def mode(self) -> str:
        """`join` when the Parquet carries the vectors, else `lookup`."""
        cols = set(self.schema.column_names)
        return "join" if any(embedding_column(m) in cols for m in MODALITIES) else "lookup"

    @property
    def available(self) -> tuple[str, ...]:
        cols = set(self.schema.column_names)
        return tuple(m for m in MODALITIES if m in self.matrices or embedding_column(m) in cols)

    @property
    def cold_item_ids(self) -> np.ndarray:
        """Encoded ids of the cold movies (from summary.json), empty if the split has none."""
        split = self.summary.get("split", {})
        if split.get("cold_movie_encoded_ids") is not None:
            return np.asarray(split["cold_movie_encoded_ids"], dtype=np.int64)
        raw = split.get("cold_movie_ids") or []  # an ETL run older than the encoded ids
        if not len(raw):
            return np.zeros(0, dtype=np.int64)
        return encode_movie_ids(self.path, np.asarray(raw, dtype=np.int64))

    @property
    def n_items(self) -> int:
        return int(self.schema[ITEM].int_domain.max) + 1

    @property
    def n_users(self) -> int:
        return int(self.schema[USER].int_domain.max) + 1


def resolve_etl_run(etl_root: Path, run: str | None) -> Path:
    """The run folder: the one named, or the only one there is."""
    if run:
        path = etl_root / run
        if not path.is_dir():
            raise MmrecError(f"ETL run {path} does not exist; run `mmrec etl` first")
        return path
    runs = sorted(p for p in etl_root.glob("*") if EtlRunPaths(p).summary.exists())
    if not runs:
        raise MmrecError(f"no finished ETL run under {etl_root}; run `mmrec etl` first")
    if len(runs) > 1:
        names = ", ".join(p.name for p in runs)
        raise MmrecError(f"several ETL runs under {etl_root} ({names}): pick one with --etl-run")
    return runs[0]


def load_etl(path: Path) -> EtlRun:
    """Read summary, schema and embedding matrices of an ETL run, checking the contract."""
    from merlin.io import Dataset

    path = Path(path)
    files = EtlRunPaths(path)
    for need in (files.summary, files.train, files.valid):
        if not need.exists():
            raise MmrecError(f"ETL run {path} is missing {need.name}; rerun `mmrec etl`")
    try:
        summary = json.loads(files.summary.read_text())
    except json.JSONDecodeError as exc:
        raise MmrecError(f"{files.summary} is not valid JSON: {exc}") from exc
    schema = Dataset(str(files.train), engine="parquet", cpu=True).schema
    for col in (USER, ITEM, LABEL):
        if col not in schema.column_names:
            raise MmrecError(
                f"{files.train} has no column {col!r} (columns: {schema.column_names})"
            )
    run = EtlRun(path=path, summary=summary, schema=schema)
    for m in MODALITIES:
        f = files.matrix(m)
        if not f.exists():
            continue
        mat = np.load(f, mmap_mode="r")
        if mat.ndim != 2 or mat.dtype != np.float32:
            raise MmrecError(f"{f}: expected a 2-D float32 matrix, got {mat.dtype} {mat.shape}")
        if mat.shape[0] < run.n_items:
            raise MmrecError(
                f"{f} has {mat.shape[0]} rows but movieId ids go up to {run.n_items - 1}"
            )
        run.matrices[m] = np.asarray(mat)
        hf = files.flags(m)
        run.has[m] = np.load(hf).astype(bool) if hf.exists() else np.abs(run.matrices[m]).sum(1) > 0
    return run


def encode_movie_ids(etl_path: Path, raw_ids: np.ndarray) -> np.ndarray:
    """Map raw movieIds to Categorify's encoded ids using the ETL's unique-values file."""
    import pandas as pd

    files = EtlRunPaths(etl_path)
    f = files.vocabulary(ITEM)
    if not f.exists():
        found = list(etl_path.glob(f"**/{f.parent.name}/{f.name}"))
        if not found:
            raise MmrecError(f"{f} not found: cannot encode the cold movie ids of {etl_path}")
        files = EtlRunPaths(found[0].parent.parent)
    raw, encoded = read_vocabulary(files, ITEM)
    enc = pd.Series(encoded, index=raw).reindex(raw_ids).to_numpy()
    return enc[~pd.isna(enc)].astype(np.int64)


def control_matrix(matrix: np.ndarray, has: np.ndarray, control: str, seed: int = 0) -> np.ndarray:
    """The matrix the model will see under an ablation control.

    constant: every row (every movie, with or without the modality) is the mean real vector.
    shuffled: the rows of movies that have the modality are permuted among themselves.
    """
    if control not in CONTROLS:
        raise MmrecError(f"unknown control {control!r}: choose from {', '.join(CONTROLS)}")
    matrix = np.asarray(matrix, dtype=np.float32)
    if control == "none":
        return matrix
    present = np.flatnonzero(np.asarray(has, dtype=bool)[: matrix.shape[0]])
    if control == "constant":
        mean = matrix[present].mean(0) if present.size else np.zeros(matrix.shape[1], np.float32)
        return np.broadcast_to(mean.astype(np.float32), matrix.shape).copy()
    rng = np.random.default_rng(seed)
    out = matrix.copy()
    perm = rng.permutation(present)
    # a derangement is not needed: with many movies, fixed points are few (about one)
    out[present] = matrix[perm]
    return out


def feature_schema(
    run: EtlRun,
    modalities: Sequence[str],
    *,
    with_label: bool = True,
    continuous: bool = False,
) -> Any:
    """The columns a model reads: ids, genres, year, chosen `<m>_embedding` columns, the label.

    `continuous` adds the ETL's CONTINUOUS features (count / target-encoding columns, when it
    wrote any); the `has_<m>` flags are left out in both modes so join and lookup match.
    """
    from merlin.schema import ColumnSchema, Schema, Tags

    for m in modalities:
        if m not in run.available:
            raise MmrecError(
                f"modality {m!r} is not in ETL run {run.path} (has: {', '.join(run.available) or 'none'})"
            )
    base = run.schema
    cats = [
        c.name
        for c in base.select_by_tag(Tags.CATEGORICAL).excluding_by_tag(Tags.TARGET)
        if c.name in (USER, ITEM, GENRES, YEAR)
    ]
    cols = [base[c] for c in cats]
    if continuous:
        # NVTabular's TargetEncoding output keeps the label's TARGET tags: it is a feature here
        # (computed out-of-fold on train), so the model must not see those tags
        label_tags = {Tags.TARGET, Tags.BINARY_CLASSIFICATION, Tags.REGRESSION}
        for c in base.select_by_tag(Tags.CONTINUOUS):
            if c.name in (LABEL, RATING) or c.name.startswith(FLAG_PREFIX):
                continue
            if Tags.EMBEDDING in c.tags:
                continue
            tags = [t for t in c.tags if t not in label_tags]
            cols.append(_retag(c, tags))
    for m in modalities:
        name = embedding_column(m)
        d = run.matrices[m].shape[1] if m in run.matrices else None
        if d is None:
            shape = base[name].shape
            d = int(shape.dims[-1].max)
        cols.append(
            ColumnSchema(
                name,
                tags=[Tags.EMBEDDING, Tags.ITEM],
                dtype="float32",
                is_list=True,
                is_ragged=False,
                dims=(None, d),
            )
        )
    if with_label:
        cols.append(base[LABEL])
    return Schema(cols)


def _retag(col: Any, tags: list) -> Any:
    from merlin.schema import ColumnSchema

    return ColumnSchema(
        col.name,
        tags=tags,
        properties=col.properties,
        dtype=col.dtype,
        is_list=col.is_list,
        is_ragged=col.is_ragged,
    )


def gather_tables(
    run: EtlRun, modalities: Sequence[str], control: str, seed: int
) -> dict[str, np.ndarray]:
    """Per embedding column, the id-aligned matrix to gather from (empty in plain join mode)."""
    tables = {}
    for m in modalities:
        if m not in run.matrices:
            if control != "none":
                raise MmrecError(
                    f"control {control!r} needs {run.files.matrix(m)}, which is missing"
                )
            continue  # join mode: the column comes from the Parquet as written
        if run.mode == "join" and control == "none":
            continue
        tables[embedding_column(m)] = control_matrix(run.matrices[m], run.has[m], control, seed)
    return tables


def make_loader(
    data_dir: Path | list[Path],
    schema: Any,
    tables: dict[str, np.ndarray],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    positives_only: bool = False,
    id_dropout: float = 0.0,
    holdout: tuple[float, int] | None = None,
    held_out_rows: bool = False,
) -> Any:
    """A Merlin TF loader over `data_dir` (or a list of its Parquet files) reading only `schema`'s
    columns, plus the gathered vectors.

    `holdout` = (fraction, seed) splits the rows by models.calibration.held_out: the loader reads
    the rows outside that slice, or only those inside it with `held_out_rows`.
    """
    import merlin.models.tf as mm
    from merlin.io import Dataset

    gathered = set(tables)
    read_cols = [c for c in schema.column_names if c not in gathered]
    source = [str(f) for f in data_dir] if isinstance(data_dir, list) else str(data_dir)
    ds = Dataset(source, engine="parquet", cpu=True)
    missing = [c for c in read_cols if c not in ds.schema.column_names]
    if missing:
        raise MmrecError(f"{data_dir} lacks column(s) {missing}")
    if positives_only or (holdout is not None and holdout[0] > 0):
        ddf = ds.to_ddf()
        if positives_only:
            ddf = ddf[ddf[LABEL] == 1]
        if holdout is not None and holdout[0] > 0:
            ddf = ddf[ddf.map_partitions(_in_holdout, *holdout, meta=(None, bool)) == held_out_rows]
        ds = Dataset(ddf[read_cols], schema=schema.select_by_name(read_cols), cpu=True)
    else:
        # the model's view of the columns (e.g. target-encoding features without label tags)
        ds.schema = schema.select_by_name(read_cols)
    loader = mm.Loader(ds, batch_size=batch_size, shuffle=shuffle, seed_fn=(lambda: seed))
    if tables:
        loader = loader.map(GatherEmbeddings(tables, schema))
    if id_dropout > 0:
        loader = loader.map(ItemIdDropout(id_dropout, seed))
    return loader


def _in_holdout(part: Any, fraction: float, seed: int) -> Any:
    import pandas as pd

    from models.calibration import held_out

    mask = held_out(part[USER].to_numpy(), part[ITEM].to_numpy(), fraction, seed)
    return pd.Series(mask, index=part.index)


class ItemIdDropout:
    """Loader transform for training: a random share of rows get the out-of-vocabulary movie id.

    Those rows keep their genres, year and pretrained vectors (gathered before), so the model
    must learn to score a movie from its content, as it has to for a cold movie, instead of
    leaning on the id embedding alone (the DropoutNet idea, applied to ids).
    """

    def __init__(self, rate: float, seed: int) -> None:
        import tensorflow as tf

        self.rate = float(rate)
        self.rng = tf.random.Generator.from_seed(seed)

    def __call__(self, x: dict, y: Any = None) -> tuple[dict, Any]:
        import tensorflow as tf

        x = dict(x)
        ids = x[ITEM]
        drop = self.rng.uniform(tf.shape(ids)) < self.rate
        x[ITEM] = tf.where(drop, tf.cast(OOV_ID, ids.dtype), ids)
        return x, y

    def compute_output_schema(self, input_schema: Any) -> Any:
        return input_schema


class GatherEmbeddings:
    """Loader transform: `<m>_embedding` = matrix[movieId] for each table, one gather per batch."""

    def __init__(self, tables: dict[str, np.ndarray], schema: Any) -> None:
        import tensorflow as tf

        self.tables = {name: tf.constant(mat) for name, mat in tables.items()}
        self.schema = schema

    def __call__(self, x: dict, y: Any = None) -> tuple[dict, Any]:
        import tensorflow as tf

        x = dict(x)
        ids = tf.reshape(x[ITEM], [-1])
        for name, table in self.tables.items():
            x[name] = tf.gather(table, ids)
        return x, y

    def compute_output_schema(self, input_schema: Any) -> Any:
        from merlin.schema import Schema

        extra = [self.schema[n] for n in self.tables if n not in input_schema.column_names]
        return input_schema + Schema(extra)


def pretrained_stats(run: EtlRun, modalities: Sequence[str]) -> dict[str, tuple[list, list]]:
    """Per embedding column, (mean, std) per dimension over the movies that have the modality.

    Computed on the real matrix whatever the control, and stored in the model (see
    models.layers.Standardize), so serving feeds raw vectors like training does. Raw vectors
    differ wildly in scale (MiniLM: unit norm, values ~0.04; CNN features: norm ~30, mostly a
    shared offset), which a plain projection learns slowly or not at all.
    """
    out = {}
    for m in modalities:
        if m not in run.matrices:
            continue
        present = run.matrices[m][run.has[m]]
        if present.shape[0] < 2:
            continue
        std = present.std(0)
        std = np.where(std > 1e-6, std, 1.0)
        out[embedding_column(m)] = (present.mean(0).tolist(), std.tolist())
    return out
