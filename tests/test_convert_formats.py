"""The native-format parsers: ml-100k, ml-1m and the CSV variants, on small hand-made files.

tests/fixtures/ml-100k-mini and ml-1m-mini are written by hand in those archives' formats
(Latin-1 titles with accents and commas, a movie without a year, 100k's "unknown" genre). The
same fixtures are also zipped, served over HTTP and downloaded, to run the whole stage for
those variants. Bad input must fail with the file, line and column named.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from loopback_http import LoopbackServer

from mmrec.config import DownloadConfig
from mmrec.errors import MmrecError
from mmrec.paths import DatasetPaths
from workflows.data.convert import (
    TABLES,
    convert_100k,
    convert_csv,
    convert_dat,
    parse_genres,
    parse_year,
)
from workflows.data.download import download_dataset
from workflows.data.schema import SCHEMAS

FIXTURES = Path(__file__).parent / "fixtures"
ML100K = FIXTURES / "ml-100k-mini"
ML1M = FIXTURES / "ml-1m-mini"
FILES_100K = {
    "ratings": ML100K / "u.data",
    "movies": ML100K / "u.item",
    "genres": ML100K / "u.genre",
}
FILES_1M = {"ratings": ML1M / "ratings.dat", "movies": ML1M / "movies.dat"}

MOVIES_100K = [
    (1, "Harbor Lights (1994)", 1994, ["Comedy", "Drama", "Romance"]),
    (2, "Long Night, The (1996)", 1996, ["Action", "Crime", "Thriller"]),
    (3, "Café Lumière (1997)", 1997, ["Drama"]),
    (4, "unknown", None, []),
    (5, "Quiet Harbor", 1995, ["Documentary"]),  # year from the release date
    (6, "Señor Niño, El (a.k.a. The Boy) (1993) ", 1993, ["Children's", "Film-Noir", "Sci-Fi"]),
]
MOVIES_1M = [
    (1, "Harbor Lights (1994)", 1994, ["Comedy", "Drama", "Romance"]),
    (2, "Long Night, The (1996)", 1996, ["Action", "Crime", "Thriller"]),
    (3, "Café Lumière (1997)", 1997, ["Drama"]),
    (4, "Night Train (a.k.a. Midnight Express) (1999)", 1999, ["Mystery", "Thriller"]),
    (5, "Señorita Äpfel, Die (1988)", 1988, ["Children's", "Comedy"]),
]
RATINGS_1M = [
    (1, 1, 5.0, 970000001),
    (1, 3, 3.0, 970000002),
    (2, 2, 4.0, 970000103),
    (2, 5, 1.0, 970000104),
    (3, 4, 2.0, 970000205),
    (3, 1, 4.0, 970000206),
    (9000, 5, 3.0, 960000000),
]


def _outputs(folder: Path) -> dict[str, Path]:
    return {name: folder / f"{name}.parquet" for name in TABLES}


def _rows(path: Path) -> list[tuple]:
    return [tuple(r.values()) for r in pq.read_table(path).to_pylist()]


def _assert_schemas(outputs: dict[str, Path]) -> None:
    for name, path in outputs.items():
        assert pq.read_schema(path).equals(SCHEMAS[name]), name


# ------------------------------------------------------------------ years and genres


@pytest.mark.parametrize(
    ("title", "year"),
    [
        ("Toy Story (1995)", 1995),
        ("Babylon 5", None),
        ("Runaway Brain (1995) ", 1995),
        ("Movie (a.k.a. X) (2001)", 2001),
        ("Léon: The Professional (a.k.a. The Professional) (Léon) (1994)", 1994),
        ("1984 (1984)", 1984),
        ("2001: A Space Odyssey (1968)", 1968),
        ("Death Note: Desu nôto (2006–2007)", 2006),
        ("Some Series (2016- )", 2016),
        ("Big (1988", None),
        ("(500) Days of Summer (2009)", 2009),
        ("Hundred (100)", None),
        ("", None),
    ],
)
def test_parse_year(title: str, year: int | None) -> None:
    assert parse_year(title) == year


def test_parse_genres() -> None:
    assert parse_genres("(no genres listed)") == []
    assert parse_genres("") == []
    assert parse_genres("Sci-Fi|Film-Noir") == ["Sci-Fi", "Film-Noir"]


# ------------------------------------------------------------------ hand-made fixtures


def test_100k_fixture(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path)
    counts = convert_100k(FILES_100K, outputs, chunk_rows=1000)
    assert counts == {"ratings": 8, "movies": 6, "links": 0, "tags": 0}
    _assert_schemas(outputs)
    assert _rows(outputs["movies"]) == MOVIES_100K
    ratings = _rows(outputs["ratings"])
    assert ratings[0] == (7, 1, 3.0, 880000100) and ratings[-1] == (45, 3, 5.0, 882250000)
    assert pq.read_table(outputs["links"]).num_rows == 0


def test_1m_fixture(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path)
    counts = convert_dat(FILES_1M, outputs, chunk_rows=1000)
    assert counts == {"ratings": 7, "movies": 5, "links": 0, "tags": 0}
    _assert_schemas(outputs)
    assert _rows(outputs["movies"]) == MOVIES_1M
    assert _rows(outputs["ratings"]) == RATINGS_1M
    assert pq.read_table(outputs["tags"]).num_rows == 0


@pytest.mark.parametrize(
    ("variant", "fixture", "movies"),
    [("ml-1m", ML1M, MOVIES_1M), ("ml-100k", ML100K, MOVIES_100K)],
)
def test_variant_downloads_over_http(
    tmp_path: Path, variant: str, fixture: Path, movies: list[tuple]
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    archive = served / f"{variant}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(fixture.iterdir()):
            zf.write(f, f"{variant}/{f.name}")
        zf.writestr(f"{variant}/README", "hand-made test archive\n")
    (served / f"{variant}.zip.md5").write_text(hashlib.md5(archive.read_bytes()).hexdigest())
    with LoopbackServer(served) as srv:
        cfg = DownloadConfig(variant, tmp_path / "data", base_url=srv.url, retries=1)
        manifest = download_dataset(cfg)
    paths = DatasetPaths.of(tmp_path / "data", variant)
    assert manifest["variant"] == variant and manifest["row_counts"]["movies"] == len(movies)
    assert manifest["row_counts"]["links"] == 0 and "empty tables" in manifest["notes"]
    assert _rows(paths.movies) == movies
    _assert_schemas({name: getattr(paths, name) for name in TABLES})


def test_csv_archive_without_tags(tmp_path: Path) -> None:
    """`mmrec data archive` leaves tags.csv out for a dataset without tags: still converts."""
    served = tmp_path / "served"
    served.mkdir()
    files = _csv_files(tmp_path)
    archive = served / "ml-25m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("ratings", "movies", "links"):
            zf.write(files[name], f"ml-25m/{name}.csv")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with LoopbackServer(served) as srv:
        checksum = f"sha256:{digest}"
        cfg = DownloadConfig("ml-25m", tmp_path / "data", base_url=srv.url, checksum=checksum)
        manifest = download_dataset(cfg)
        assert srv.requests_for(".md5") == []
    assert manifest["row_counts"] == {"ratings": 2, "movies": 3, "links": 3, "tags": 0}
    assert "no tags" in manifest["notes"]
    assert pq.read_schema(DatasetPaths.of(tmp_path / "data", "ml-25m").tags).equals(SCHEMAS["tags"])


# ------------------------------------------------------------------ CSV variants


def _write(path: Path, text: str, encoding: str = "utf-8", newline: str = "\r\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def _csv_files(folder: Path) -> dict[str, Path]:
    return {
        "ratings": _write(
            folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.5,100\n2,20,0.5,200\n"
        ),
        "movies": _write(
            folder / "movies.csv",
            "movieId,title,genres\n"
            '10,"Night, the Day, and After (1990)",Drama|Horror\n'
            '20,"Zoë ""Z"" Jones (2012) ",(no genres listed)\n'
            "30,Babylon 5,Sci-Fi\n",
        ),
        "links": _write(
            folder / "links.csv",
            "movieId,imdbId,tmdbId\n10,0114709,862\n20,0113497,\n30,0105946,\n",
        ),
        "tags": _write(
            folder / "tags.csv",
            'userId,movieId,tag,timestamp\n1,10,"dark, moody",300\n2,20,ça,400\n2,20,"",500\n',
        ),
    }


def test_csv_variant_quoting_crlf_and_nulls(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path / "out")
    counts = convert_csv(_csv_files(tmp_path), outputs, chunk_rows=1000)
    assert counts == {"ratings": 2, "movies": 3, "links": 3, "tags": 3}
    _assert_schemas(outputs)
    assert _rows(outputs["movies"]) == [
        (10, "Night, the Day, and After (1990)", 1990, ["Drama", "Horror"]),
        (20, 'Zoë "Z" Jones (2012) ', 2012, []),
        (30, "Babylon 5", None, ["Sci-Fi"]),
    ]
    assert _rows(outputs["links"]) == [(10, 114709, 862), (20, 113497, None), (30, 105946, None)]
    assert _rows(outputs["tags"]) == [
        (1, 10, "dark, moody", 300),
        (2, 20, "ça", 400),
        (2, 20, "", 500),
    ]
    assert _rows(outputs["ratings"]) == [(1, 10, 4.5, 100), (2, 20, 0.5, 200)]


def test_last_line_without_newline(tmp_path: Path) -> None:
    files = _csv_files(tmp_path)
    files["ratings"].write_bytes(b"userId,movieId,rating,timestamp\r\n1,10,4.5,100\r\n2,20,3,200")
    convert_csv(files, _outputs(tmp_path / "out"), chunk_rows=1000)
    assert _rows(tmp_path / "out" / "ratings.parquet") == [(1, 10, 4.5, 100), (2, 20, 3.0, 200)]


def test_csv_columns_found_by_name(tmp_path: Path) -> None:
    files = _csv_files(tmp_path)
    _write(
        files["ratings"], "timestamp,rating,source,userId,movieId\n100,4.5,web,1,10\n", newline="\n"
    )
    convert_csv(files, _outputs(tmp_path / "out"), chunk_rows=1000)
    assert _rows(tmp_path / "out" / "ratings.parquet") == [(1, 10, 4.5, 100)]


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ("userId,movieId,timestamp\n1,1,5\n", r"missing column\(s\) 'rating'"),
        (
            "userId,movieId,rating,timestamp\n1,1,4,5\n2,1,x,5\n",
            r"line 3, column 'rating': cannot parse 'x'",
        ),
        (
            "userId,movieId,rating,timestamp\n1,1,4,5\n,1,4,5\n",
            r"line 3, column 'userId': empty value",
        ),
        (
            "userId,movieId,rating,timestamp\n1,1,4,5,9\n",
            r"line 2: expected 4 ','-separated fields, found 5",
        ),
        (
            "userId,movieId,rating,timestamp\n1,99999999999,4,5\n",
            r"line 2, column 'movieId': .*int32",
        ),
        ("userId,movieId,rating,timestamp\n", r"no ratings"),
        ("", r"empty file"),
    ],
)
def test_bad_ratings_csv_names_file_line_and_column(
    tmp_path: Path, ratings: str, message: str
) -> None:
    files = _csv_files(tmp_path)
    _write(files["ratings"], ratings)
    out = _outputs(tmp_path / "out")
    with pytest.raises(MmrecError, match=r"ratings\.csv: " + message):
        convert_csv(files, out, chunk_rows=1000)
    assert not out["ratings"].exists() and list((tmp_path / "out").glob(".*")) == []


def test_error_rows_are_exact_across_blocks(tmp_path: Path) -> None:
    """Bad rows deep in a file that is read in several 1 MiB blocks are still found exactly."""
    lines = ["userId,movieId,rating,timestamp"] + [
        f"{i},{i % 977},3.5,{1_000_000 + i}" for i in range(200_000)
    ]
    good = _write(tmp_path / "ratings.csv", "\n".join(lines) + "\n", newline="\n")
    assert good.stat().st_size > 4 << 20
    (tmp_path / "x").mkdir()
    files = {**_csv_files(tmp_path / "x"), "ratings": good}
    counts = convert_csv(files, _outputs(tmp_path / "ok"), chunk_rows=1)
    assert counts["ratings"] == 200_000
    assert pq.ParquetFile(tmp_path / "ok" / "ratings.parquet").metadata.num_row_groups > 1

    bad = list(lines)
    bad[150_001] = "150000,5,oops,1"
    _write(good, "\n".join(bad) + "\n", newline="\n")
    with pytest.raises(MmrecError, match=r"line 150002, column 'rating': cannot parse 'oops'"):
        convert_csv(files, _outputs(tmp_path / "bad"), chunk_rows=1)
    empty = list(lines)
    empty[180_000] = "179999,,3.5,1"
    _write(good, "\n".join(empty) + "\n", newline="\n")
    with pytest.raises(MmrecError, match=r"line 180001, column 'movieId': empty value"):
        convert_csv(files, _outputs(tmp_path / "empty"), chunk_rows=1)


def test_bad_links_movies_and_tags(tmp_path: Path) -> None:
    files = _csv_files(tmp_path)
    out = _outputs(tmp_path / "out")
    _write(files["links"], "movieId,imdbId,tmdbId\n10,tt0114709,862\n")
    with pytest.raises(
        MmrecError, match=r"links\.csv: line 2, column 'imdbId': cannot parse 'tt0114709'"
    ):
        convert_csv(files, out, chunk_rows=1000)
    files = _csv_files(tmp_path)
    _write(files["movies"], "movieId,title,genres\n1,A (1990),Drama\n1,B (1991),Drama\n")
    with pytest.raises(MmrecError, match=r"movies\.csv: movie id 1 appears twice"):
        convert_csv(files, out, chunk_rows=1000)
    files = _csv_files(tmp_path)
    _write(files["movies"], "movieId,name,genres\n1,A (1990),Drama\n")
    with pytest.raises(MmrecError, match=r"movies\.csv: missing column\(s\) 'title'"):
        convert_csv(files, out, chunk_rows=1000)
    files = _csv_files(tmp_path)
    files["tags"].write_bytes(
        b"userId,movieId,tag,timestamp\n1,10,ok,1\n1,10,caf\xe9,2\n"
    )  # Latin-1
    with pytest.raises(MmrecError, match=r"tags\.csv: line 3: not valid utf-8"):
        convert_csv(files, out, chunk_rows=1000)


# ------------------------------------------------------------------ .dat and 100k errors


def _copy_fixture(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in src.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            b"7::3:4::970000300\n",
            r"ratings\.dat: line 8: expected 4 '::'-separated fields, found 3",
        ),
        (b"7::3::four::970000300\n", r"ratings\.dat: line 8, column 'rating': cannot parse 'four'"),
        (b"7::3::4::\n", r"ratings\.dat: line 8, column 'timestamp': empty value"),
    ],
)
def test_bad_ratings_dat(tmp_path: Path, line: bytes, message: str) -> None:
    folder = _copy_fixture(ML1M, tmp_path / "ml-1m")
    with open(folder / "ratings.dat", "ab") as f:
        f.write(line)
    files = {"ratings": folder / "ratings.dat", "movies": folder / "movies.dat"}
    with pytest.raises(MmrecError, match=message):
        convert_dat(files, _outputs(tmp_path / "out"), chunk_rows=1000)


def test_bad_movies_dat(tmp_path: Path) -> None:
    folder = _copy_fixture(ML1M, tmp_path / "ml-1m")
    with open(folder / "movies.dat", "ab") as f:
        f.write("6::Caf\xe9 Without Genres (2000)\n".encode("latin-1"))
    files = {"ratings": folder / "ratings.dat", "movies": folder / "movies.dat"}
    with pytest.raises(MmrecError, match=r"movies\.dat: line 6: expected 3 '::'-separated fields"):
        convert_dat(files, _outputs(tmp_path / "out"), chunk_rows=1000)


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        (
            "u.item",
            "7|Short Line (1990)|01-Jan-1990\n",
            r"u\.item: line 7: expected 24 '\|'-separated",
        ),
        (
            "u.item",
            "7|X (1990)|||" + "|2" * 19 + "\n",
            r"u\.item: line 7: genre flag 'unknown' is '2'",
        ),
        ("u.item", "x|X (1990)|||" + "|0" * 19 + "\n", r"u\.item: line 7: movie id 'x' is not"),
        ("u.genre", "Extra|20\n", r"u\.genre: line 21: expected 'name\|19'"),
        ("u.data", "1\t2\t3.5x\t4\n", r"u\.data: line 9, column 'rating': cannot parse '3.5x'"),
    ],
)
def test_bad_100k_files(tmp_path: Path, name: str, extra: str, message: str) -> None:
    folder = _copy_fixture(ML100K, tmp_path / "ml-100k")
    with open(folder / name, "ab") as f:
        f.write(extra.encode("latin-1"))
    files = {
        "ratings": folder / "u.data",
        "movies": folder / "u.item",
        "genres": folder / "u.genre",
    }
    with pytest.raises(MmrecError, match=message):
        convert_100k(files, _outputs(tmp_path / "out"), chunk_rows=1000)
