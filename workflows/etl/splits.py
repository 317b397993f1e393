"""Clean and split the ratings in a streaming way, writing train/valid Parquet for NVTabular.

The ratings are read once, in row batches, into compact column arrays (about 20 bytes a row,
never a DataFrame); bad rows are found and each row's split decided with vectorised numpy;
then each split is written in slices, in small row groups that NVTabular can partition. Bad rows are counted and
dropped, never silently: NaN ratings, ratings of movies absent from movies.parquet, and repeated
(userId, movieId, timestamp) rows (the first is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.errors import MmrecError

SPLITS = ("random", "temporal", "cold-items")
TEMPORAL_MODES = ("global", "leave-last-out")
INPUT_BYTES_PER_ROW = 12  # userId int32, movieId int32, rating float32
# Small row groups so NVTabular can cut partitions finely (it never splits a row group).
ROW_GROUP_ROWS = 1 << 18


@dataclass
class SplitResult:
    train_path: Path
    valid_path: Path
    info: dict = field(default_factory=dict)  # kind, parameters, cold movie ids, cut
    bad_rows: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)
    positives: dict = field(default_factory=dict)
    train_users: np.ndarray | None = None  # sorted unique userIds of train
    user_counts: np.ndarray | None = None  # train ratings per user, aligned with train_users
    movie_counts: np.ndarray | None = None  # train ratings per catalogue movie (sorted ids)
    user_positives: np.ndarray | None = None  # liked train ratings, aligned like user_counts
    movie_positives: np.ndarray | None = None  # liked train ratings, aligned like movie_counts


UNIFORM_CHUNK = 1 << 16  # rows per step: the temporaries stay in cache


def uniform_from_index(index: np.ndarray, seed: int) -> np.ndarray:
    """A seeded uniform [0, 1) per global row index (splitmix64): independent of batching.

    Computed in place, in chunks that fit in cache: at 25M rows, whole-array temporaries are
    200 MB each and the hash becomes memory-bound.
    """
    index = np.asarray(index)
    out = np.empty(index.shape, dtype=np.float64)
    flat_in, flat_out = index.reshape(-1), out.reshape(-1)
    for lo in range(0, flat_in.size, UNIFORM_CHUNK):
        flat_out[lo : lo + UNIFORM_CHUNK] = _splitmix_unit(flat_in[lo : lo + UNIFORM_CHUNK], seed)
    return out


def _splitmix_unit(index: np.ndarray, seed: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64)
        z += np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z += np.uint64(0x9E3779B97F4A7C15)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    z >>= np.uint64(11)
    out = z.astype(np.float64)
    out /= float(1 << 53)
    return out


def _unique_ints(values: np.ndarray) -> np.ndarray:
    """Sorted unique non-negative ints; a bincount when ids are dense enough (much faster)."""
    if values.size == 0:
        return values
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi < max(4 * values.size, 1 << 20):
        return np.flatnonzero(np.bincount(values, minlength=hi + 1)).astype(values.dtype)
    return np.unique(values)


DENSE_IDS = 1 << 27  # ids below this are looked up in flat arrays instead of binary search


def _membership(sorted_ids: np.ndarray):
    """A vectorised `x in sorted_ids` (a flat bitmap when ids are small non-negative ints)."""
    if sorted_ids.size and sorted_ids[0] >= 0 and sorted_ids[-1] < DENSE_IDS:
        flat = np.zeros(int(sorted_ids[-1]) + 2, dtype=bool)
        flat[sorted_ids] = True
        top = flat.size - 1  # always False

        def member(x: np.ndarray) -> np.ndarray:
            return flat[np.where((x >= 0) & (x < top), x, top)]

        return member

    def search(x: np.ndarray) -> np.ndarray:
        if not sorted_ids.size:
            return np.zeros(x.shape, dtype=bool)
        pos = np.searchsorted(sorted_ids, x).clip(max=sorted_ids.size - 1)
        return sorted_ids[pos] == x

    return search


def _counts(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """How often each of `sorted_ids` occurs in `values` (all values are among the ids)."""
    if sorted_ids.size and sorted_ids[0] >= 0 and sorted_ids[-1] < DENSE_IDS:
        return np.bincount(values, minlength=int(sorted_ids[-1]) + 1)[sorted_ids]
    return np.bincount(np.searchsorted(sorted_ids, values), minlength=sorted_ids.size)


def _duplicate_mask(
    users: np.ndarray,
    movies: np.ndarray,
    timestamps: Callable[[np.ndarray], np.ndarray],
    keep: np.ndarray,
) -> np.ndarray:
    """True for repeats of an earlier kept (userId, movieId, timestamp) row.

    `timestamps(rows)` gives the timestamps of those rows: they are only needed for rows whose
    (userId, movieId) pair repeats, which is rare.
    """
    import pandas as pd

    kept_idx = None if keep.all() else np.flatnonzero(keep)
    u = users if kept_idx is None else users[kept_idx]
    m = movies if kept_idx is None else movies[kept_idx]
    # Sorted by (userId, movieId), as MovieLens ships: repeats are adjacent. Checked on the
    # int32 columns themselves; the int64 pair key is only built when the order is unknown.
    same_user = u[1:] == u[:-1]
    ordered = bool(((u[1:] > u[:-1]) | (same_user & (m[1:] >= m[:-1]))).all())
    if ordered:
        same = same_user & (m[1:] == m[:-1])
        cand = np.zeros(u.size, dtype=bool)
        cand[1:] |= same
        cand[:-1] |= same
    else:
        cand = pd.Series(_pair_key(u, m)).duplicated(keep=False).to_numpy()
    del same_user, u, m
    dup = np.zeros(users.size, dtype=bool)
    if cand.any():  # rare: repeated pairs; only now compare timestamps too
        idx = np.flatnonzero(cand) if kept_idx is None else kept_idx[cand]
        frame = pd.DataFrame({"p": _pair_key(users[idx], movies[idx]), "t": timestamps(idx)})
        dup[idx[frame.duplicated(keep="first").to_numpy()]] = True
    return dup


def _pair_key(users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """One int64 per (userId, movieId) pair (both int32)."""
    return (users.astype(np.int64) << 32) | (movies.astype(np.int64) & 0xFFFFFFFF)


def split_ratings(
    ratings_path: Path,
    catalogue_ids: np.ndarray,
    out_dir: Path,
    *,
    kind: str,
    valid_fraction: float,
    temporal_mode: str,
    cold_fraction: float,
    seed: int,
    rating_threshold: float,
    batch_rows: int,
    progress_bar=None,
) -> SplitResult:
    """Validate rows and assign each to train or valid; write `out_dir/{train,valid}.parquet`."""
    if kind not in SPLITS:
        raise MmrecError(f"unknown split {kind!r}; choose one of {', '.join(SPLITS)}")
    if kind == "temporal" and temporal_mode not in TEMPORAL_MODES:
        raise MmrecError(f"unknown temporal mode {temporal_mode!r}: {', '.join(TEMPORAL_MODES)}")
    if not 0.0 < valid_fraction < 1.0:
        raise MmrecError(f"valid fraction must be in (0, 1), got {valid_fraction}")
    if kind == "cold-items" and not 0.0 < cold_fraction < 1.0:
        raise MmrecError(f"cold fraction must be in (0, 1), got {cold_fraction}")

    pf = pq.ParquetFile(ratings_path)
    n = pf.metadata.num_rows
    if n == 0:
        raise MmrecError(f"{ratings_path}: no ratings")
    users = np.empty(n, dtype=np.int32)
    movies = np.empty(n, dtype=np.int32)
    # Only the temporal split orders by time; the others need timestamps just for rows whose
    # (userId, movieId) repeats, read then (decoding 25M of them costs ~0.3 s and 200 MB).
    ts = np.empty(n, dtype=np.int64) if kind == "temporal" else None
    ratings = np.empty(n, dtype=np.float32)
    nan_rating = np.zeros(n, dtype=bool)
    unknown = np.zeros(n, dtype=bool)

    in_catalogue = _membership(catalogue_ids)

    # Pass 1: keys and per-row validity.
    off = 0
    keys = [("userId", users), ("movieId", movies)] + (
        [("timestamp", ts)] if ts is not None else []
    )
    cols = [name for name, _ in keys] + ["rating"]
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
        k = batch.num_rows
        sl = slice(off, off + k)
        for name, arr in keys:
            col = batch.column(name)
            if col.null_count:
                _raise_null(ratings_path, name, off, col)
            arr[sl] = col.to_numpy()
        r = batch.column("rating").to_numpy(zero_copy_only=False)
        ratings[sl] = r
        nan_rating[sl] = np.isnan(ratings[sl])
        unknown[sl] = ~in_catalogue(movies[sl])
        off += k
        if progress_bar is not None:
            progress_bar.update(k)

    if ts is None:
        _check_no_nulls(pf, ratings_path, "timestamp", batch_rows)

    keep = ~(nan_rating | unknown)
    dup = _duplicate_mask(users, movies, _timestamps_of(pf, ts), keep)
    keep &= ~dup
    bad = {
        "nan_rating": int(nan_rating.sum()),
        "unknown_movie": int((unknown & ~nan_rating).sum()),
        "duplicate": int(dup.sum()),
    }
    bad["dropped_total"] = int(n - keep.sum())
    if not keep.any():
        raise MmrecError(f"{ratings_path}: no valid ratings left after dropping bad rows ({bad})")

    valid, info = _assign(
        kind, users, movies, ts, keep, valid_fraction, temporal_mode, cold_fraction, seed
    )
    del ts
    train = keep & ~valid
    valid &= keep
    if not train.any() or not valid.any():
        raise MmrecError(
            f"{ratings_path}: the {kind} split left an empty "
            f"{'train' if not train.any() else 'valid'} set ({int(keep.sum())} usable ratings)"
        )
    _check_labels(ratings, keep, train, rating_threshold, ratings_path)
    train_users = _unique_ints(users[train])
    user_counts = _counts(users[train], train_users)
    movie_counts = _counts(movies[train], catalogue_ids)
    liked = train & (ratings > rating_threshold)
    user_positives = _counts(users[liked], train_users)
    movie_positives = _counts(movies[liked], catalogue_ids)
    del liked

    # Pass 2: the kept columns are already in memory: write each split in slices.
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [
            pa.field(c, t)
            for c, t in (("userId", pa.int32()), ("movieId", pa.int32()), ("rating", pa.float32()))
        ]
    )
    paths = {"train": out_dir / "train.parquet", "valid": out_dir / "valid.parquet"}
    masks = {"train": train, "valid": valid}
    rows = {"train": 0, "valid": 0}
    positives = {"train": 0, "valid": 0}
    for name, mask in masks.items():
        with pq.ParquetWriter(paths[name], schema, compression="none") as writer:
            for lo in range(0, n, batch_rows):
                m = mask[lo : lo + batch_rows]
                r = ratings[lo : lo + batch_rows][m]
                if not r.size:
                    continue
                cols = [users[lo : lo + batch_rows][m], movies[lo : lo + batch_rows][m], r]
                writer.write_table(
                    pa.Table.from_arrays([pa.array(c) for c in cols], schema=schema),
                    row_group_size=ROW_GROUP_ROWS,
                )
                rows[name] += r.size
                positives[name] += int((r > rating_threshold).sum())
    return SplitResult(
        train_path=paths["train"],
        valid_path=paths["valid"],
        info=info,
        bad_rows=bad,
        rows=rows,
        positives=positives,
        train_users=train_users,
        user_counts=user_counts,
        movie_counts=movie_counts,
        user_positives=user_positives,
        movie_positives=movie_positives,
    )


def _check_labels(
    ratings: np.ndarray, keep: np.ndarray, train: np.ndarray, threshold: float, path: Path
) -> None:
    """A threshold outside the ratings gives one-class labels: a model would learn nothing."""
    positives = int(np.count_nonzero(ratings[train] > threshold))
    n_train = int(np.count_nonzero(train))
    if 0 < positives < n_train:
        return
    lo, hi = float(ratings[keep].min()), float(ratings[keep].max())
    kind = "positive" if positives == 0 else "negative"
    raise MmrecError(
        f"--rating-threshold {threshold:g} leaves no {kind} row in train ({n_train:,} rows, "
        f"label = rating > threshold): the ratings in {path} range from {lo:g} to {hi:g}; "
        f"choose a threshold in [{lo:g}, {hi:g})"
    )


def _timestamps_of(pf: pq.ParquetFile, ts: np.ndarray | None):
    """rows -> their timestamps: from `ts` when read, else from the file (read on first use)."""

    def timestamps(rows: np.ndarray) -> np.ndarray:
        column = ts if ts is not None else pf.read(columns=["timestamp"]).column(0).to_numpy()
        return column[rows]

    return timestamps


def _raise_null(path: Path, name: str, offset: int, col: pa.Array) -> None:
    first = offset + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
    raise MmrecError(f"{path}: null {name} in row {first}")


def _check_no_nulls(pf: pq.ParquetFile, path: Path, name: str, batch_rows: int) -> None:
    """Raise on a null in column `name`: from the row-group statistics, reading it only if
    a row group has nulls or no statistics (then to report the first null row)."""
    j = pf.schema_arrow.get_field_index(name)
    meta = pf.metadata
    stats = [meta.row_group(i).column(j).statistics for i in range(meta.num_row_groups)]
    if all(st is not None and st.has_null_count and st.null_count == 0 for st in stats):
        return
    off = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=[name]):
        col = batch.column(0)
        if col.null_count:
            _raise_null(path, name, off, col)
        off += batch.num_rows


def _assign(kind, users, movies, ts, keep, valid_fraction, temporal_mode, cold_fraction, seed):
    """Return (is_valid per row, split info). Only rows with keep=True matter."""
    n = users.size
    info: dict = {"kind": kind, "seed": seed}
    if kind == "random":
        info["valid_fraction"] = valid_fraction
        return uniform_from_index(np.arange(n), seed) < valid_fraction, info
    if kind == "temporal":
        info["mode"] = temporal_mode
        if temporal_mode == "global":
            kept_ts = ts[keep]
            # The cut is a timestamp: rows at or before it train, strictly after it validate,
            # so every valid rating is later than every train rating.
            cut = int(np.quantile(kept_ts, 1.0 - valid_fraction, method="lower"))
            info.update(valid_fraction=valid_fraction, cut_timestamp=cut)
            return ts > cut, info
        return _leave_last_out(users, movies, ts, keep), info
    # cold-items
    rated = _unique_ints(movies[keep])
    n_cold = max(1, int(round(cold_fraction * rated.size)))
    if n_cold >= rated.size:
        raise MmrecError(
            f"cold fraction {cold_fraction} would hold out all {rated.size} rated movies"
        )
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(rated, size=n_cold, replace=False)).astype(np.int32)
    is_cold = np.isin(movies, cold)
    warm_valid = uniform_from_index(np.arange(n), seed) < valid_fraction
    info.update(
        cold_fraction=cold_fraction,
        valid_fraction_warm=valid_fraction,
        cold_movie_ids=cold.tolist(),
        cold_valid_rows=int((is_cold & keep).sum()),
    )
    return is_cold | warm_valid, info


def _leave_last_out(users, movies, ts, keep) -> np.ndarray:
    """Each user's latest rating (ties: highest movieId) validates; one-rating users train."""
    import pandas as pd

    idx = np.flatnonzero(keep)
    # (timestamp, movieId) ordered by one int64 key; uniqueness comes from dropping duplicates.
    if ts[idx].min(initial=0) < 0 or ts[idx].max(initial=0) >= (1 << 32):
        raise MmrecError("leave-last-out needs timestamps in [0, 2**32) seconds")
    key = (ts[idx] << 31) | (movies[idx].astype(np.int64) & 0x7FFFFFFF)
    frame = pd.DataFrame({"u": users[idx], "k": key})
    grouped = frame.groupby("u", sort=False)["k"]
    last = grouped.transform("max").to_numpy() == key
    many = grouped.transform("size").to_numpy() > 1
    valid = np.zeros(users.size, dtype=bool)
    valid[idx[last & many]] = True
    return valid
