"""`mmrec data archive`: GroupLens-style zip + .md5, checked row by row and through the real
downloader (served on 127.0.0.1) back to the same Parquet tables."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loopback_http import LoopbackServer

from mmrec.config import DownloadConfig, SyntheticConfig
from mmrec.errors import MmrecError
from mmrec.paths import DatasetPaths
from workflows.data.archive import write_archive
from workflows.data.schema import MOVIES, SCHEMAS
from workflows.data.synthetic import generate_synthetic

REPO = Path(__file__).resolve().parents[1]
TABLES = ("ratings", "movies", "links", "tags")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetPaths:
    """A small synthetic dataset, with one movie edited to hold the awkward cases."""
    data_dir = tmp_path_factory.mktemp("data")
    cfg = SyntheticConfig(
        data_dir=data_dir, users=80, movies=400, ratings=3_000, seed=5, posters=False
    )
    generate_synthetic(cfg)
    paths = DatasetPaths.of(data_dir, cfg.name)
    movies = pq.read_table(paths.movies).to_pylist()
    movies[0].update(title='"Quoted", Title (With, Commas) (1999)', year=1999, genres=[])
    movies[1].update(title="Sans Année, Le", year=None)
    pq.write_table(pa.Table.from_pylist(movies, schema=MOVIES), paths.movies)
    return paths


@pytest.fixture(scope="module")
def archive(dataset: DatasetPaths, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(dataset, tmp_path_factory.mktemp("serve") / "ml-25m.zip")


def _member(archive: Path, name: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        return zf.read(f"ml-25m/{name}")


def _rows(archive: Path, name: str) -> list[list[str]]:
    text = _member(archive, name).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_layout_and_md5(archive: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
    assert names == [
        "ml-25m/",
        "ml-25m/README.txt",
        "ml-25m/links.csv",
        "ml-25m/movies.csv",
        "ml-25m/ratings.csv",
        "ml-25m/tags.csv",
    ]
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    assert Path(f"{archive}.md5").read_text() == f"{digest}  ml-25m.zip\n"
    assert not [p for p in archive.parent.iterdir() if p.name.startswith(".")]


def test_csv_rows_equal_the_parquet_tables(archive: Path, dataset: DatasetPaths) -> None:
    ratings = pq.read_table(dataset.ratings).to_pylist()
    rows = _rows(archive, "ratings.csv")
    assert rows[0] == ["userId", "movieId", "rating", "timestamp"]
    assert len(rows) == len(ratings) + 1 == 3_001
    for row, want in zip(rows[1:], ratings, strict=True):
        assert row == [
            str(want["userId"]),
            str(want["movieId"]),
            f"{want['rating']:.1f}",
            str(want["timestamp"]),
        ]

    movies = pq.read_table(dataset.movies).to_pylist()
    rows = _rows(archive, "movies.csv")
    assert rows[0] == ["movieId", "title", "genres"]
    assert rows[1] == [str(movies[0]["movieId"]), movies[0]["title"], "(no genres listed)"]
    for row, want in zip(rows[1:], movies, strict=True):
        genres = "|".join(want["genres"]) or "(no genres listed)"
        assert row == [str(want["movieId"]), want["title"], genres]

    links = pq.read_table(dataset.links).to_pylist()
    rows = _rows(archive, "links.csv")
    assert rows[0] == ["movieId", "imdbId", "tmdbId"]
    assert any(want["tmdbId"] is None for want in links)
    for row, want in zip(rows[1:], links, strict=True):
        tmdb = "" if want["tmdbId"] is None else str(want["tmdbId"])
        assert row == [str(want["movieId"]), f"{want['imdbId']:07d}", tmdb]
        assert len(row[1]) >= 7

    tags = pq.read_table(dataset.tags).to_pylist()
    rows = _rows(archive, "tags.csv")
    assert rows[0] == ["userId", "movieId", "tag", "timestamp"]
    assert [r[2] for r in rows[1:]] == [t["tag"] for t in tags]
    assert any("," in t["tag"] for t in tags)


def test_quoting_and_line_ends_like_grouplens(archive: Path, movielens_small_zip: Path) -> None:
    raw = _member(archive, "movies.csv")
    assert b'"""Quoted"", Title (With, Commas) (1999)",(no genres listed)\r\n' in raw
    assert "Sans Année, Le".encode() in raw
    with zipfile.ZipFile(movielens_small_zip) as real:
        for name in ("ratings.csv", "movies.csv", "links.csv", "tags.csv"):
            ours = _member(archive, name)
            theirs = real.read(f"ml-latest-small/{name}")
            assert ours.split(b"\n", 1)[0] == theirs.split(b"\n", 1)[0], name  # header + CR
            assert ours.count(b"\r\n") == ours.count(b"\n"), name
    assert _member(archive, "ratings.csv").split(b"\r\n")[1].split(b",")[2] in {
        f"{v / 2:.1f}".encode() for v in range(1, 11)
    }


def test_same_dataset_gives_the_same_zip(dataset: DatasetPaths, tmp_path: Path) -> None:
    a = write_archive(dataset, tmp_path / "a" / "ml-25m.zip")
    b = write_archive(dataset, tmp_path / "b" / "ml-25m.zip")
    assert a.read_bytes() == b.read_bytes()
    c = write_archive(dataset, tmp_path / "c.zip", folder="other")
    with zipfile.ZipFile(c) as zf:
        assert "other/ratings.csv" in zf.namelist()


def test_missing_table_is_named(dataset: DatasetPaths, tmp_path: Path) -> None:
    empty = DatasetPaths.of(tmp_path, "nothing")
    with pytest.raises(MmrecError, match="ratings.parquet"):
        write_archive(empty, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(MmrecError, match="folder"):
        write_archive(dataset, tmp_path / "x.zip", folder="a/b")


def test_round_trip_through_the_real_downloader(
    archive: Path, dataset: DatasetPaths, tmp_path: Path
) -> None:
    download = pytest.importorskip("workflows.data.download")
    cfg = DownloadConfig(
        variant="ml-25m",
        data_dir=tmp_path,
        chunk_rows=700,  # several streamed blocks even for this small file
        retries=2,
        backoff_s=0.01,
        timeout_s=10.0,
        base_url="",
    )
    with LoopbackServer(archive.parent) as server:
        manifest = download.download_dataset(dataclasses.replace(cfg, base_url=server.url))
    assert manifest["row_counts"]["ratings"] == 3_000
    got = DatasetPaths.of(tmp_path, "ml-25m")
    for name in TABLES:
        ours = pq.read_table(getattr(dataset, name))
        theirs = pq.read_table(getattr(got, name))
        assert theirs.schema.equals(SCHEMAS[name], check_metadata=False), name
        assert theirs.equals(ours.cast(theirs.schema)), name


def test_cli_archive(dataset: DatasetPaths, tmp_path: Path) -> None:
    exe = REPO / ".venv" / "bin" / "mmrec"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mmrec.cli"]
    out = tmp_path / "ml-25m.zip"
    proc = subprocess.run(
        [*cmd, "data", "archive", "--dataset", dataset.name, "--data-dir", str(dataset.data_dir),
         "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "MMREC_NO_PROGRESS": "1"}, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and Path(f"{out}.md5").exists()
    proc = subprocess.run(
        [*cmd, "data", "archive", "--dataset", "absent", "--data-dir", str(tmp_path),
         "--out", str(tmp_path / "y.zip")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "ratings.parquet" in proc.stderr
