"""The local enrich source: users' image folders and text tables (CSV, JSONL, Parquet), each key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_tmdb import image_bytes, png_header_only, write_dataset
from PIL import Image

from mmrec.config import EnrichConfig
from mmrec.errors import MmrecError
from mmrec.paths import DatasetPaths
from workflows.data.schema import SYNOPSES
from workflows.enrich.stage import enrich

REPO = Path(__file__).resolve().parents[1]
# (movieId, imdbId, tmdbId); movie 6 has no tmdbId
LINKS = [(m, m, None if m == 6 else 100 + m) for m in range(1, 7)]


def local(data_dir: Path, **kw: object) -> EnrichConfig:
    return EnrichConfig(dataset="ml", data_dir=data_dir, source="local", **kw)  # type: ignore[arg-type]


def report(data_dir: Path) -> dict[int, tuple]:
    table = pq.read_table(DatasetPaths.of(data_dir, "ml").enrich_report)
    return {
        r["movieId"]: (r["poster"], r["poster_reason"], r["synopsis"], r["synopsis_reason"])
        for r in table.to_pylist()
    }


def synopses(data_dir: Path) -> dict[int, str]:
    table = pq.read_table(DatasetPaths.of(data_dir, "ml").synopses)
    assert table.schema.equals(SYNOPSES)
    assert set(table.column("source").to_pylist()) <= {"local"}
    return dict(
        zip(table.column("movieId").to_pylist(), table.column("text").to_pylist(), strict=False)
    )


def posters(data_dir: Path) -> list[str]:
    return sorted(p.name for p in DatasetPaths.of(data_dir, "ml").posters.iterdir())


def test_movie_ids_csv_validation_unknown_keys_and_rerun(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(image_bytes("JPEG"))
    (images / "2.jpg").write_bytes(image_bytes("PNG"))  # misnamed: really a PNG
    (images / "3.png").write_bytes(b"definitely not an image")
    (images / "4.png").write_bytes(png_header_only(100_000, 100_000))
    (images / "99.jpg").write_bytes(image_bytes())  # no movie 99
    (images / "notes.txt").write_text("not named by a key")
    (images / ".DS_Store").write_bytes(b"\0")
    texts = tmp_path / "plots.csv"
    texts.write_text(
        'movieId,text\n1,Plot one.\n2,"Plot two, with a comma\nand a newline."\n3,\n5,Plot five.\n'
        "77,Nobody's plot.\n"
    )
    summary = enrich(local(tmp_path, local_images=images, local_texts=texts))

    assert report(tmp_path) == {
        1: ("found", None, "found", None),
        2: ("found", None, "found", None),
        3: ("failed", "not an image Pillow can identify", "missing", "empty text"),
        4: (
            "failed",
            "decompression bomb refused: Image size (10000000000 pixels) exceeds limit of "
            "178956970 pixels, could be decompression bomb DOS attack.",
            "missing",
            "no row in the text table",
        ),
        5: ("missing", "no image file named by its movieId", "found", None),
        6: ("missing", "no image file named by its movieId", "missing", "no row in the text table"),
    }
    assert posters(tmp_path) == ["1.jpg", "2.png"]
    with Image.open(DatasetPaths.of(tmp_path, "ml").posters / "2.png") as im:
        assert im.format == "PNG"
    assert synopses(tmp_path) == {
        1: "Plot one.",
        2: "Plot two, with a comma\nand a newline.",
        5: "Plot five.",
    }
    assert summary["unknown_keys"] == {
        "images": {"count": 2, "examples": ["99.jpg", "notes.txt"]},
        "texts": {"count": 1, "examples": ["77"]},
    }
    assert summary["poster"] == {"found": 2, "missing": 2, "failed": 2}

    # a rerun is a no-op; adding a poster fetches exactly that movie
    paths = DatasetPaths.of(tmp_path, "ml")
    before = paths.enrich_report.stat().st_mtime_ns
    again = enrich(local(tmp_path, local_images=images, local_texts=texts))
    assert (again["fetched"], again["skipped"]) == (0, True)
    assert paths.enrich_report.stat().st_mtime_ns == before
    (images / "6.webp").write_bytes(image_bytes("WEBP"))
    third = enrich(local(tmp_path, local_images=images, local_texts=texts))
    assert (third["fetched"], third["cached"]) == (1, 5)
    assert report(tmp_path)[6][0] == "found"
    assert posters(tmp_path) == ["1.jpg", "2.png", "6.webp"]


def test_imdb_ids_with_jsonl(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    images = tmp_path / "images"
    images.mkdir()
    (images / "tt0000001.jpg").write_bytes(image_bytes())
    (images / "0000002.png").write_bytes(image_bytes("PNG"))  # the tt prefix is optional
    texts = tmp_path / "plots.jsonl"
    rows = [{"imdbId": "tt0000001", "text": "One."}, {"imdbId": 3, "text": "Three."}]
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    enrich(local(tmp_path, key="imdbId", local_images=images, local_texts=texts))
    got = report(tmp_path)
    assert [got[m][0] for m in range(1, 7)] == ["found", "found"] + ["missing"] * 4
    assert got[4][1] == "no image file named by its imdbId"
    assert synopses(tmp_path) == {1: "One.", 3: "Three."}
    assert posters(tmp_path) == ["1.jpg", "2.png"]


def test_tmdb_ids_with_parquet_custom_column_and_limit(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    images = tmp_path / "images"
    images.mkdir()
    for tmdb in (101, 102, 105):
        (images / f"{tmdb}.jpg").write_bytes(image_bytes(color=tmdb))
    texts = tmp_path / "plots.parquet"
    table = pa.table(
        {"tmdbId": pa.array([101, 103, 999], pa.int64()), "overview": ["A.", "C.", "Z."]}
    )
    pq.write_table(table, texts)
    cfg = local(
        tmp_path, key="tmdbId", local_images=images, local_texts=texts, text_column="overview"
    )
    first = enrich(EnrichConfig(**{**cfg.__dict__, "limit": 2}))
    assert sorted(report(tmp_path)) == [1, 2] and first["selected"] == 2
    summary = enrich(cfg)
    assert (summary["fetched"], summary["cached"]) == (4, 2)
    got = report(tmp_path)
    assert {m: (r[0], r[2]) for m, r in got.items()} == {
        1: ("found", "found"),
        2: ("found", "missing"),
        3: ("missing", "found"),
        4: ("missing", "missing"),
        5: ("found", "missing"),
        6: ("missing", "missing"),
    }
    assert got[6][1] == got[6][3] == "no tmdbId"
    assert synopses(tmp_path) == {1: "A.", 3: "C."}
    assert summary["unknown_keys"]["texts"] == {"count": 1, "examples": ["999"]}


@pytest.mark.parametrize(
    ("name", "content", "key", "message"),
    [
        (
            "t.csv",
            "movieId,text\n1,a\n2,b\n1,c\n",
            "movieId",
            r"t\.csv: duplicate movieId 1 in line 2 and line 4",
        ),
        (
            "t.jsonl",
            '{"imdbId": "tt0000001", "text": "a"}\n{"imdbId": 1, "text": "b"}\n',
            "imdbId",
            r"t\.jsonl: duplicate imdbId tt0000001 in line 1 and line 2",
        ),
        (
            "t.parquet",
            pa.table({"tmdbId": [101, 102, 101], "text": ["a", "b", "c"]}),
            "tmdbId",
            r"t\.parquet: duplicate tmdbId 101 in row 1 and row 3",
        ),
        (
            "t.csv",
            "movieId,plot\n1,a\n",
            "movieId",
            r"t\.csv: no column 'text' \(columns: movieId, plot\)",
        ),
        ("t.csv", "movieId,text\n1,a\nabc,b\n", "movieId", r"t\.csv: line 3: movieId 'abc' is not"),
        (
            "t.jsonl",
            '{"imdbId": 1, "text": "a"}\n{oops\n',
            "imdbId",
            r"t\.jsonl: line 2: invalid JSON",
        ),
        ("t.xlsx", "x", "movieId", r"unknown text table type '\.xlsx'"),
    ],
)
def test_bad_text_tables_name_the_file_and_rows(
    tmp_path: Path, name: str, content: object, key: str, message: str
) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    path = tmp_path / name
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    else:
        path.write_text(str(content))
    with pytest.raises(MmrecError, match=message):
        enrich(local(tmp_path, key=key, local_texts=path))
    assert not DatasetPaths.of(tmp_path, "ml").enrich_report.exists()


def test_two_images_for_one_key_is_an_error(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    images = tmp_path / "images"
    images.mkdir()
    (images / "tt0000001.jpg").write_bytes(image_bytes())
    (images / "1.png").write_bytes(image_bytes("PNG"))
    with pytest.raises(
        MmrecError, match=r"2 images for imdbId tt0000001 \(1\.png, tt0000001\.jpg\)"
    ):
        enrich(local(tmp_path, key="imdbId", local_images=images))


def test_foreign_outputs_and_source_switch_need_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    paths = DatasetPaths.of(tmp_path, "ml")
    paths.posters.mkdir()
    (paths.posters / "5.jpg").write_bytes(image_bytes())  # as the synthetic generator leaves them
    pq.write_table(
        pa.table({"movieId": pa.array([5], pa.int32()), "text": ["x"], "source": ["synthetic"]}),
        paths.synopses,
    )
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(image_bytes())
    with pytest.raises(MmrecError, match="did not\\s+write.*--force"):
        enrich(local(tmp_path, local_images=images))
    assert (paths.posters / "5.jpg").exists()  # untouched
    enrich(local(tmp_path, local_images=images, force=True))
    assert posters(tmp_path) == ["1.jpg"]  # replaced: posters/ matches the report exactly
    monkeypatch.setenv("TMDB_API_KEY", "unused")
    with pytest.raises(MmrecError, match="enriched from local; rerun with --force"):
        enrich(EnrichConfig(dataset="ml", data_dir=tmp_path, source="tmdb"))


def test_cli_local_success_and_bad_input(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(image_bytes())
    good = tmp_path / "good.csv"
    good.write_text("movieId,text\n1,Plot.\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("movieId,text\n1,Plot.\n1,Again.\n")
    mmrec = str(REPO / ".venv" / "bin" / "mmrec")
    if not Path(mmrec).exists():
        mmrec = str(Path(sys.executable).with_name("mmrec"))
    env = {**os.environ, "MMREC_NO_PROGRESS": "1"}
    base = [mmrec, "enrich", "--dataset", "ml", "--source", "local", "--data-dir", str(tmp_path)]

    ok = subprocess.run(
        [*base, "--images", str(images), "--texts", str(good)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "ml: enrich local done" in ok.stdout
    assert "posters: found 1, missing 5, failed 0" in ok.stdout
    assert "synopses: found 1, missing 5, failed 0" in ok.stdout

    fail = subprocess.run(
        [*base, "--texts", str(bad), "--force"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert fail.returncode == 2
    lines = fail.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mmrec enrich: error: ")
    assert "bad.csv: duplicate movieId 1 in line 2 and line 3" in lines[0]
