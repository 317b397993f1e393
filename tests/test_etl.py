"""The ETL stage on tiny inputs in the contract's schemas (real Parquet, real NVTabular)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import decode, read_split, run, write_inputs

from mmrec.errors import MmrecError
from workflows.data.schema import RATINGS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("etl")
    write_inputs(data_dir, dims={"image": 8, "text": 4})
    return data_dir


@pytest.fixture(scope="module")
def lookup_run(tiny: Path) -> tuple[dict, Path]:
    summary = run(tiny, embeddings="lookup")
    return summary, Path(summary["path"])


@pytest.fixture(scope="module")
def join_run(tiny: Path) -> tuple[dict, Path]:
    summary = run(tiny, embeddings="join")
    return summary, Path(summary["path"])


def raw_inputs(data_dir: Path, name: str = "tiny") -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.read_parquet(data_dir / name / "ratings.parquet"),
        pd.read_parquet(data_dir / name / "movies.parquet"),
    )


# ------------------------------------------------------------------ outputs and encodings


def test_outputs_follow_the_contract(lookup_run) -> None:
    summary, run_dir = lookup_run
    for part in ("train", "valid"):
        assert (run_dir / part / "schema.pbtxt").is_file()
    assert (run_dir / "workflow" / "workflow.pkl").is_file()
    assert (run_dir / "categories" / "unique.movieId.parquet").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["rows"] == summary["rows"]
    assert not list(run_dir.parent.glob(".*tmp"))  # the temporary directory was renamed away
    assert not (run_dir / "_prepared").exists()
    cols = summary["columns"]
    assert list(cols)[:4] == ["userId", "movieId", "genres", "year"]
    assert {"user", "id", "categorical"} <= set(cols["userId"]["tags"])
    assert {"item", "id", "categorical"} <= set(cols["movieId"]["tags"])
    assert {"target", "binary_classification"} <= set(cols["rating_binary"]["tags"])
    assert {"target", "regression"} <= set(cols["rating"]["tags"])
    assert "image_embedding" not in cols  # lookup mode writes ids only
    n_movies = summary["input_rows"]["movies"]
    assert summary["cardinalities"]["movieId"] == n_movies + 3
    image = np.load(run_dir / "embeddings" / "image.npy")
    assert image.shape == (n_movies + 3, 8) and image.dtype == np.float32
    assert not image[:3].any()
    assert summary["peak_memory"]["self_mb"] > 0
    assert set(summary["timings_s"]) >= {"split", "fit", "transform_train", "transform_valid"}


def test_encodings_invert_through_saved_categories(tiny: Path, lookup_run) -> None:
    summary, run_dir = lookup_run
    ratings, movies = raw_inputs(tiny)
    train = read_split(run_dir, "train")
    valid = read_split(run_dir, "valid")
    assert len(train) + len(valid) == len(ratings)
    back = decode(run_dir, train)
    back["rating"] = train["rating"].to_numpy()
    merged = back.merge(ratings, on=["userId", "movieId"], suffixes=("", "_raw"))
    assert len(merged) == len(train)  # every train row decodes to exactly one raw rating
    np.testing.assert_array_equal(merged["rating"], merged["rating_raw"])
    np.testing.assert_array_equal(train["rating_binary"], (train["rating"] > 3).astype(int))
    meta = movies.set_index("movieId").loc[back["movieId"]]
    assert back["genres"].tolist() == [sorted(g) for g in meta["genres"]]
    years = meta["year"].astype("float64").to_numpy()
    decoded_years = back["year"].astype("float64").to_numpy()
    np.testing.assert_array_equal(np.isnan(years), np.isnan(decoded_years))
    np.testing.assert_array_equal(years[~np.isnan(years)], decoded_years[~np.isnan(years)])
    assert (train.loc[np.isnan(years), "year"] == 1).all()  # null year: Categorify's null id
    # Users seen only in valid are out of vocabulary (2): the workflow is fitted on train only.
    valid_users = decode(run_dir, valid)["userId"]
    assert (valid["userId"][valid_users.isna()] == 2).all()
    assert set(valid_users.dropna()) <= set(back["userId"])


def test_reloaded_workflow_transforms_new_data_identically(tiny: Path, lookup_run) -> None:
    import nvtabular as nvt
    from merlin.io import Dataset

    from workflows.etl.splits import uniform_from_index

    summary, run_dir = lookup_run
    ratings, _ = raw_inputs(tiny)
    is_valid = uniform_from_index(np.arange(len(ratings)), summary["split"]["seed"]) < 0.2
    raw_valid = ratings.loc[is_valid, ["userId", "movieId", "rating"]].reset_index(drop=True)
    wf = nvt.Workflow.load(str(run_dir / "workflow"))
    again = wf.transform(Dataset(raw_valid, cpu=True)).to_ddf().compute().reset_index(drop=True)
    written = read_split(run_dir, "valid").reset_index(drop=True)
    assert list(again.columns) == list(written.columns)
    for col in written.columns:
        a, b = again[col].tolist(), written[col].tolist()
        assert [np.asarray(x).tolist() for x in a] == [np.asarray(x).tolist() for x in b], col


def test_rerun_is_a_no_op_unless_forced(tiny: Path, lookup_run) -> None:
    summary, run_dir = lookup_run
    before = (run_dir / "summary.json").stat().st_mtime_ns
    again = run(tiny, embeddings="lookup")
    assert again["skipped"] is True and again["rows"] == summary["rows"]
    assert (run_dir / "summary.json").stat().st_mtime_ns == before
    with pytest.raises(MmrecError, match="other parameters"):
        run(tiny, embeddings="lookup", rating_threshold=4.0)


# ------------------------------------------------------------------ embeddings both ways


def test_join_and_lookup_feed_identical_model_inputs(join_run, lookup_run) -> None:
    """Training's loader (models.inputs) sees the same tensors whether the ETL joined the
    vectors into the Parquet or left them in id-aligned matrices to gather per batch."""
    from models.inputs import feature_schema, gather_tables, load_etl, make_loader

    _, jdir = join_run
    _, ldir = lookup_run
    assert "image_embedding" in read_split(jdir, "train").columns
    assert "image_embedding" not in read_split(ldir, "train").columns
    modalities = ("text", "image")
    joined_run, looked_run = load_etl(jdir), load_etl(ldir)
    assert (joined_run.mode, looked_run.mode) == ("join", "lookup")
    for split in ("train_dir", "valid_dir"):
        loaders = []
        for etl in (joined_run, looked_run):
            schema = feature_schema(etl, modalities, continuous=True)
            tables = gather_tables(etl, modalities, "none", 0)
            loaders.append(make_loader(getattr(etl, split), schema, tables, 97, shuffle=False))
        batches = 0
        for (xj, yj), (xl, yl) in zip(*loaders, strict=True):
            assert sorted(xj) == sorted(xl)
            assert {"image_embedding", "text_embedding"} <= set(xj)
            for key in xj:
                a, b = xj[key].numpy(), xl[key].numpy()
                assert a.dtype == b.dtype and a.shape == b.shape, key
                np.testing.assert_array_equal(a, b, err_msg=key)
            np.testing.assert_array_equal(np.asarray(yj), np.asarray(yl))
            batches += 1
        assert batches >= 2


def test_matrix_rows_match_the_feature_store(tiny: Path, lookup_run) -> None:
    _, run_dir = lookup_run
    store = pq.read_table(tiny / "tiny" / "feature_store.parquet").to_pandas()
    uniq = pd.read_parquet(run_dir / "categories" / "unique.movieId.parquet")["movieId"]
    enc_of = {int(v): int(k) for k, v in uniq.dropna().items()}
    image = np.load(run_dir / "embeddings" / "image.npy")
    has = np.load(run_dir / "embeddings" / "has_image.npy")
    for _, row in store.iterrows():
        i = enc_of[int(row.movieId)]
        assert has[i] == row.has_image
        np.testing.assert_array_equal(image[i], row.image_embedding if row.has_image else 0)
    missing = set(enc_of) - set(store.movieId)  # in the catalogue, not in the store
    assert missing and all(has[enc_of[m]] == 0 and not image[enc_of[m]].any() for m in missing)
    assert not has[:3].any()


# ------------------------------------------------------------------ splits


def _with_timestamps(run_dir: Path, ratings: pd.DataFrame, split: str) -> pd.DataFrame:
    back = decode(run_dir, read_split(run_dir, split))
    return back.merge(ratings, on=["userId", "movieId"], how="left")


def test_temporal_global_split_respects_time(tiny: Path) -> None:
    summary = run(tiny, split="temporal", embeddings="none")
    run_dir = Path(summary["path"])
    ratings, _ = raw_inputs(tiny)
    train = read_split(run_dir, "train")
    valid = read_split(run_dir, "valid")
    ts = ratings.set_index(["userId", "movieId"])["timestamp"]
    cats = run_dir / "categories"
    users = pd.read_parquet(cats / "unique.userId.parquet")["userId"]
    movies = pd.read_parquet(cats / "unique.movieId.parquet")["movieId"]
    train_ts = ts.loc[list(zip(train.userId.map(users), train.movieId.map(movies), strict=False))]
    assert train_ts.max() <= summary["split"]["cut_timestamp"]
    assert (ratings.timestamp > summary["split"]["cut_timestamp"]).sum() == len(valid)
    assert 0.15 < len(valid) / len(ratings) < 0.25


def test_temporal_leave_last_out(tiny: Path) -> None:
    summary = run(
        tiny, split="temporal", temporal_mode="leave-last-out", embeddings="none", run_name="llo"
    )
    run_dir = Path(summary["path"])
    ratings, _ = raw_inputs(tiny)
    # Valid users may be unknown to train only if all their ratings are in valid: never here.
    valid = _with_timestamps(run_dir, ratings, "valid")
    counts = ratings.groupby("userId").size()
    last = ratings.sort_values(["timestamp", "movieId"]).groupby("userId").tail(1)
    expected = last[last.userId.map(counts) > 1]
    assert sorted(zip(valid.userId, valid.movieId, strict=False)) == sorted(
        zip(expected.userId, expected.movieId, strict=False)
    )
    assert summary["split"]["mode"] == "leave-last-out"


def test_cold_items_are_never_in_train_but_reachable_by_content(tiny: Path) -> None:
    summary = run(tiny, split="cold-items", cold_fraction=0.2, embeddings="lookup")
    run_dir = Path(summary["path"])
    cold = set(summary["split"]["cold_movie_ids"])
    cold_enc = summary["split"]["cold_movie_encoded_ids"]
    ratings, _ = raw_inputs(tiny)
    assert len(cold) == round(0.2 * ratings.movieId.nunique())
    train = decode(run_dir, read_split(run_dir, "train"))
    valid = decode(run_dir, read_split(run_dir, "valid"))
    assert not cold & set(train.movieId)
    assert (valid.movieId.isin(cold)).sum() == ratings.movieId.isin(cold).sum()
    assert summary["split"]["cold_valid_rows"] == ratings.movieId.isin(cold).sum()
    # Cold movies keep their own encoded id (not OOV) and their content row.
    assert min(cold_enc) >= 3
    has = np.load(run_dir / "embeddings" / "has_image.npy")
    image = np.load(run_dir / "embeddings" / "image.npy")
    store = pq.read_table(tiny / "tiny" / "feature_store.parquet").to_pandas().set_index("movieId")
    for raw, enc in zip(summary["split"]["cold_movie_ids"], cold_enc, strict=True):
        if raw in store.index and store.loc[raw, "has_image"]:
            assert has[enc] == 1
            np.testing.assert_array_equal(image[enc], store.loc[raw, "image_embedding"])


def test_random_split_is_seeded(tiny: Path, lookup_run) -> None:
    summary, _ = lookup_run

    def valid_pairs(result: dict) -> set:
        raw = decode(Path(result["path"]), read_split(Path(result["path"]), "valid"))
        return set(zip(raw.userId, raw.movieId, strict=True))

    other = run(tiny, embeddings="none", seed=7)
    assert valid_pairs(other) != valid_pairs(summary)  # another seed, another split
    same = run(tiny, embeddings="none", seed=42, run_name="again")
    assert same["rows"] == summary["rows"]
    assert valid_pairs(same) == valid_pairs(summary)
    assert 0.15 < summary["rows"]["valid"] / sum(summary["rows"].values()) < 0.25


# ------------------------------------------------------------------ options


def test_count_and_target_encoding_features_are_fitted_on_train(tiny: Path) -> None:
    summary = run(
        tiny, embeddings="none", count_features=True, target_encoding=True, run_name="extras"
    )
    run_dir = Path(summary["path"])
    cols = summary["columns"]
    te = [c for c in cols if c.startswith("TE_")]
    assert len(te) == 2 and all("continuous" in cols[c]["tags"] for c in te)
    assert "continuous" in cols["userId_count"]["tags"]
    train = read_split(run_dir, "train")
    assert np.isfinite(train[[*te, "userId_count", "movieId_count"]].to_numpy()).all()
    # log(count) of each user's train ratings, normalised: monotone in the train count.
    counts = train.groupby("userId").size()
    per_user = train.groupby("userId")["userId_count"].first()
    assert per_user.corr(np.log1p(counts), method="spearman") > 0.99
    # valid rows are encoded from all of train (NVTabular alone would apply its k folds to them
    # too, giving the global mean to movies absent from a fold); train rows stay out-of-fold
    valid = read_split(run_dir, "valid")
    prior = train["rating_binary"].mean()
    for col in ("userId", "movieId"):
        stats = train.groupby(col)["rating_binary"].agg(["sum", "count"])
        full = (stats["sum"] + 20 * prior) / (stats["count"] + 20)
        expected = full.reindex(valid[col]).fillna(prior).to_numpy()
        np.testing.assert_allclose(valid[f"TE_{col}_rating_binary"], expected, atol=1e-5)
        in_sample = full.reindex(train[col]).to_numpy()
        assert not np.allclose(train[f"TE_{col}_rating_binary"], in_sample, atol=1e-3)
    # the saved workflow serves raw ids without the rating (NVTabular's op needs the label)
    import nvtabular as nvt
    from merlin.io import Dataset

    wf = nvt.Workflow.load(str(run_dir / "workflow"))
    wf.remove_inputs(["rating"])
    rows = valid[valid["userId"] >= 3].head(40)  # users seen in train (the rest are OOV)
    raw = decode(run_dir, rows)[["userId", "movieId"]].astype(np.int32).reset_index(drop=True)
    served = wf.transform(Dataset(raw, cpu=True)).to_ddf().compute()
    for col in te:
        np.testing.assert_allclose(served[col], rows[col], atol=1e-6)


# ------------------------------------------------------------------ bad input


def _rewrite(root: Path, name: str, table: pa.Table) -> None:
    pq.write_table(table, root / f"{name}.parquet")


@pytest.mark.parametrize("sort_input", [False, True], ids=["unsorted", "sorted-by-user-movie"])
def test_bad_rows_are_counted_and_dropped(tmp_path: Path, sort_input: bool) -> None:
    root = write_inputs(tmp_path, name="bad")
    ratings = pq.read_table(root / "ratings.parquet")
    n = ratings.num_rows
    extra = pa.table(
        {
            "userId": pa.array([1, 2, 1], pa.int32()),
            "movieId": pa.array([ratings["movieId"][0].as_py(), 999_999, 0], pa.int32()),
            "rating": pa.array([float("nan"), 4.0, 3.0], pa.float32()),
            "timestamp": pa.array([5, 6, 7], pa.int64()),
        },
        schema=RATINGS,
    )
    dup = ratings.slice(10, 2)  # two exact repeats of earlier rows
    table = pa.concat_tables([ratings, extra, dup])
    if sort_input:  # MovieLens' own order: the duplicate check's fast path
        table = table.sort_by([("userId", "ascending"), ("movieId", "ascending")])
    _rewrite(root, "ratings", table)
    summary = run(tmp_path, dataset="bad", embeddings="none")
    assert summary["bad_rows"] == {
        "nan_rating": 1,
        "unknown_movie": 2,
        "duplicate": 2,
        "dropped_total": 5,
    }
    assert sum(summary["rows"].values()) == n


@pytest.mark.parametrize(
    ("table", "change", "message"),
    [
        ("ratings", lambda t: t.drop(["rating"]), "missing column 'rating'"),
        ("ratings", lambda t: t.set_column(1, "movieId", t["movieId"].cast(pa.int64())), "int64"),
        ("movies", lambda t: t.drop(["genres"]), "genres"),
        ("movies", lambda t: pa.concat_tables([t, t.slice(0, 1)]), "more than once"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path: Path, table, change, message) -> None:
    root = write_inputs(tmp_path, name="bad")
    _rewrite(root, table, change(pq.read_table(root / f"{table}.parquet")))
    with pytest.raises(MmrecError, match=message) as err:
        run(tmp_path, dataset="bad", embeddings="none")
    assert f"{table}.parquet" in str(err.value)
    assert not (root / "etl" / "random-none").exists()
    assert not list((root / "etl").glob(".*")) if (root / "etl").exists() else True


@pytest.mark.parametrize("split", ["random", "temporal"])
def test_null_timestamp_is_reported_with_its_row(tmp_path: Path, split: str) -> None:
    """Random splits never decode timestamps; a null one must still be found, by its row."""
    root = write_inputs(tmp_path, name="bad")
    ratings = pq.read_table(root / "ratings.parquet")
    ts = ratings["timestamp"].to_pylist()
    ts[777] = None
    table = ratings.set_column(3, "timestamp", pa.array(ts, pa.int64()))
    pq.write_table(table, root / "ratings.parquet", row_group_size=400)
    with pytest.raises(MmrecError, match="null timestamp in row 777"):
        run(tmp_path, dataset="bad", split=split, embeddings="none")


def test_bad_feature_store_and_options(tmp_path: Path) -> None:
    root = write_inputs(tmp_path, name="bad", dims={"image": 4})
    store = pq.read_table(root / "feature_store.parquet")
    _rewrite(root, "feature_store", store.drop(["has_image"]))
    with pytest.raises(MmrecError, match="has_image"):
        run(tmp_path, dataset="bad")
    with pytest.raises(MmrecError, match="split"):
        run(tmp_path, dataset="bad", split="weekly", embeddings="none")
    with pytest.raises(MmrecError, match="no 'audio_embedding'"):
        _rewrite(root, "feature_store", store)
        run(tmp_path, dataset="bad", modalities=("audio",))
    with pytest.raises(MmrecError, match="ratings file not found"):
        run(tmp_path, dataset="missing")


@pytest.mark.parametrize("keep", [True, False])
def test_rating_targets_match_the_stock_operator_chain(keep: bool) -> None:
    """One RatingTargets node gives what LambdaOp >> Rename >> AddTags (+ AddTags) gave."""
    import nvtabular as nvt
    from merlin.io import Dataset
    from merlin.schema import Tags

    from workflows.etl.ops import RatingTargets

    frame = pd.DataFrame({"rating": np.array([0.5, 3.0, 3.5, 5.0, 1.0], dtype=np.float32)})
    stock = (
        ["rating"]
        >> nvt.ops.LambdaOp(lambda r: (r > 3.0).astype(np.int32), dtype=np.int32)
        >> nvt.ops.Rename(name="rating_binary")
        >> nvt.ops.AddTags([Tags.TARGET, Tags.BINARY_CLASSIFICATION])
    )
    if keep:
        stock = stock + (["rating"] >> nvt.ops.AddTags([Tags.TARGET, Tags.REGRESSION]))
    ours = ["rating"] >> RatingTargets(3.0, keep=keep)
    outputs = []
    for graph in (stock, ours):
        wf = nvt.Workflow(graph)
        out = wf.fit_transform(Dataset(frame, cpu=True)).to_ddf().compute()
        outputs.append((wf.output_schema, out.reset_index(drop=True)))
    (stock_schema, stock_out), (our_schema, our_out) = outputs
    assert our_schema == stock_schema

    def described(schema) -> list:  # ColumnSchema equality ignores shapes: compare them too
        return [
            (c.name, repr(c.dtype), repr(c.shape), sorted(map(str, c.tags)), c.properties)
            for c in schema
        ]

    assert described(our_schema) == described(stock_schema)
    assert list(our_out.columns) == (["rating_binary", "rating"] if keep else ["rating_binary"])
    pd.testing.assert_frame_equal(our_out, stock_out)
    assert our_out["rating_binary"].tolist() == [0, 0, 1, 1, 0]


@pytest.mark.parametrize(("threshold", "kind"), [(7.0, "positive"), (0.25, "negative")])
def test_threshold_outside_the_ratings_is_an_error(tmp_path: Path, threshold, kind) -> None:
    """A 0.5-5 scale with threshold 7 would train on all-zero labels; it must stop, saying why."""
    root = write_inputs(tmp_path, name="scale")
    with pytest.raises(MmrecError) as err:
        run(tmp_path, dataset="scale", embeddings="none", rating_threshold=threshold)
    msg = str(err.value)
    assert f"--rating-threshold {threshold:g}" in msg and f"no {kind} row in train" in msg
    assert "from 0.5 to 5" in msg
    assert not (root / "etl" / "random-none").exists()
    assert run(tmp_path, dataset="scale", embeddings="none", rating_threshold=4.5)["rows"]["train"]
