"""`mmrec data download` end to end against a real HTTP server on 127.0.0.1.

The server serves the real GroupLens ml-latest-small archive (from ../shared) and an .md5 the
test writes; faults (500s, truncation, dropped connections, corrupted bytes) are switched on in
the server, so the real download, verify, extract and convert code runs on real bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from loopback_http import LoopbackServer

from mmrec.config import DownloadConfig
from mmrec.errors import MmrecError
from mmrec.paths import DatasetPaths
from workflows.data.download import download_dataset, parse_checksum, parse_md5_file
from workflows.data.extract import extract_members
from workflows.data.schema import SCHEMAS

NAME = "ml-latest-small"
ZIP = f"{NAME}.zip"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, movielens_small_zip: Path) -> Path:
    """A folder with the real archive and a GroupLens-style .md5 ("HEX  name") beside it."""
    folder = tmp_path_factory.mktemp("served")
    shutil.copyfile(movielens_small_zip, folder / ZIP)
    (folder / f"{ZIP}.md5").write_text(f"{_md5(folder / ZIP)}  {ZIP}\n")
    return folder


@pytest.fixture
def server(served: Path):
    with LoopbackServer(served) as srv:
        yield srv


def _cfg(server: LoopbackServer, data_dir: Path, **kw) -> DownloadConfig:
    kw.setdefault("retries", 3)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 10.0)
    return DownloadConfig(variant=NAME, data_dir=data_dir, base_url=server.url, **kw)


def _assert_no_outputs(data_dir: Path) -> None:
    paths = DatasetPaths.of(data_dir, NAME)
    assert not paths.ratings.exists()
    assert not paths.manifest.exists()
    leftovers = [p.name for p in data_dir.glob(f".{NAME}.*.tmp")] if data_dir.exists() else []
    assert leftovers == []


@pytest.fixture(scope="module")
def downloaded(served: Path, tmp_path_factory: pytest.TempPathFactory):
    """One good download, shared by the read-only checks below."""
    data_dir = tmp_path_factory.mktemp("data")
    with LoopbackServer(served) as srv:
        manifest = download_dataset(_cfg(srv, data_dir))
    return manifest, DatasetPaths.of(data_dir, NAME)


def _csv_rows(zip_path: Path, member: str) -> list[list[str]]:
    with zipfile.ZipFile(zip_path) as zf:
        text = zf.read(f"{NAME}/{member}").decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[1:]


# ------------------------------------------------------------------ a good download


def test_exact_counts(downloaded) -> None:
    manifest, paths = downloaded
    assert manifest["skipped"] is False
    assert manifest["row_counts"] == {
        "ratings": 100_836,
        "movies": 9_742,
        "links": 9_742,
        "tags": 3_683,
    }
    ratings = pq.read_table(paths.ratings)
    assert ratings.num_rows == 100_836
    assert len(set(ratings.column("userId").to_pylist())) == 610
    assert pq.read_table(paths.movies).num_rows == 9_742
    assert pq.read_table(paths.tags).num_rows == 3_683
    assert pq.read_table(paths.links).column("tmdbId").null_count == 8


def test_dtypes_exactly_as_schema(downloaded) -> None:
    _, paths = downloaded
    for name, schema in SCHEMAS.items():
        if name == "synopses":
            continue
        actual = pq.read_schema(getattr(paths, name))
        assert actual.equals(schema), f"{name}: {actual} != {schema}"


def test_values_round_trip_against_csv_module(downloaded, movielens_small_zip: Path) -> None:
    _, paths = downloaded
    movies = pq.read_table(paths.movies).to_pylist()
    by_id = {m["movieId"]: m for m in movies}
    source = _csv_rows(movielens_small_zip, "movies.csv")
    assert len(source) == len(movies)
    for movie_id, title, genres in source:
        row = by_id[int(movie_id)]
        assert row["title"] == title  # exactly, year and trailing spaces included
        assert row["genres"] == ([] if genres == "(no genres listed)" else genres.split("|"))

    titles = [title for _, title, _ in source]
    comma = next(t for t in titles if "," in t)
    accented = next(t for t in titles if any(ord(c) > 127 for c in t))
    assert comma in {m["title"] for m in movies} and accented in {m["title"] for m in movies}

    year = {m["title"]: m["year"] for m in movies}
    plain = [t for t in titles if re.search(r"\(\d{4}\)$", t)]
    trailing_space = [t for t in titles if re.search(r"\(\d{4}\)\s+$", t)]
    no_parens = [t for t in titles if "(" not in t]
    assert len(plain) > 9000 and trailing_space and no_parens
    assert all(year[t] == int(t[-5:-1]) for t in plain)
    assert all(year[t] == int(t.rstrip()[-5:-1]) for t in trailing_space)
    assert all(year[t] is None for t in no_parens)
    assert sum(1 for m in movies if m["genres"] == []) == sum(
        1 for _, _, g in source if g == "(no genres listed)"
    )

    tags = pq.read_table(paths.tags).to_pylist()
    src_tags = _csv_rows(movielens_small_zip, "tags.csv")
    assert [(t["userId"], t["movieId"], t["tag"], t["timestamp"]) for t in tags] == [
        (int(u), int(m), tag, int(ts)) for u, m, tag, ts in src_tags
    ]

    ratings = pq.read_table(paths.ratings)
    src_ratings = _csv_rows(movielens_small_zip, "ratings.csv")
    assert ratings.column("movieId").to_pylist() == [int(r[1]) for r in src_ratings]
    assert ratings.column("rating").to_pylist() == [float(r[2]) for r in src_ratings]
    assert ratings.column("timestamp").to_pylist() == [int(r[3]) for r in src_ratings]

    links = pq.read_table(paths.links).to_pylist()
    src_links = _csv_rows(movielens_small_zip, "links.csv")
    assert [(x["movieId"], x["imdbId"], x["tmdbId"]) for x in links] == [
        (int(m), int(i), int(t) if t else None) for m, i, t in src_links
    ]


def test_manifest_records_provenance(downloaded, movielens_small_zip: Path) -> None:
    manifest, paths = downloaded
    on_disk = json.loads(paths.manifest.read_text())
    assert on_disk["variant"] == NAME and on_disk["dataset"] == NAME
    assert on_disk["checksum"] == {
        "algorithm": "md5",
        "hex": _md5(movielens_small_zip),
        "verified": True,
        "from": on_disk["source"]["url"] + ".md5",
    }
    assert on_disk["source"]["url"].endswith(f"/{ZIP}")
    assert on_disk["archive_bytes"] == movielens_small_zip.stat().st_size
    assert set(on_disk["timings"]) == {"download_s", "extract_s", "convert_s"}
    assert on_disk["schema"]["movies"]["genres"] == "list<item: string>"
    assert on_disk["mmrec_version"] and on_disk["created_at"]
    assert (paths.downloads / ZIP).exists() and not (paths.downloads / f"{ZIP}.part").exists()


def test_rerun_is_a_no_op(downloaded, served: Path) -> None:
    manifest, paths = downloaded
    before = paths.ratings.stat().st_mtime_ns
    with LoopbackServer(served) as srv:
        again = download_dataset(_cfg(srv, paths.data_dir))
        assert srv.requests == []
    assert again["skipped"] is True
    assert again["row_counts"] == manifest["row_counts"]
    assert paths.ratings.stat().st_mtime_ns == before


def test_force_redoes_from_the_kept_archive(server: LoopbackServer, tmp_path: Path) -> None:
    download_dataset(_cfg(server, tmp_path))
    server.reset()
    again = download_dataset(_cfg(server, tmp_path, force=True))
    assert again["skipped"] is False and again["source"]["archive_reused"] is True
    assert [r.path for r in server.requests] == [f"/{ZIP}.md5"]  # verified, not refetched


# ------------------------------------------------------------------ network faults


def test_transient_server_errors_are_retried(server: LoopbackServer, tmp_path: Path) -> None:
    server.faults.fault_suffix, server.faults.errors_left = ".zip", 2
    manifest = download_dataset(_cfg(server, tmp_path, retries=3))
    assert manifest["row_counts"]["ratings"] == 100_836
    assert len(server.requests_for(".zip")) == 3


def test_a_stalled_server_times_out_and_is_retried(server: LoopbackServer, tmp_path: Path) -> None:
    server.faults.fault_suffix = ".zip"
    server.faults.stall_s, server.faults.stalls_left = 3.0, 1
    manifest = download_dataset(_cfg(server, tmp_path, timeout_s=0.5, retries=2))
    assert manifest["row_counts"]["ratings"] == 100_836
    assert len(server.requests_for(".zip")) == 2


def test_persistent_server_error_fails_cleanly(server: LoopbackServer, tmp_path: Path) -> None:
    server.faults.fault_suffix, server.faults.errors_left = ".zip", -1
    with pytest.raises(MmrecError, match=r"HTTP 500.*|failed after 3 attempts") as err:
        download_dataset(_cfg(server, tmp_path, retries=3))
    assert "failed after 3 attempts" in str(err.value) and "HTTP 500" in str(err.value)
    _assert_no_outputs(tmp_path)


def test_missing_archive_fails_at_once(served: Path, tmp_path: Path) -> None:
    folder = tmp_path / "only-md5"
    folder.mkdir()
    shutil.copyfile(served / f"{ZIP}.md5", folder / f"{ZIP}.md5")
    with LoopbackServer(folder) as srv, pytest.raises(MmrecError, match="HTTP 404"):
        download_dataset(_cfg(srv, tmp_path / "data", retries=5))
        assert len(srv.requests_for(".zip")) == 1  # a 404 is not retried
    _assert_no_outputs(tmp_path / "data")


def test_truncated_transfer_fails_cleanly(server: LoopbackServer, tmp_path: Path) -> None:
    server.faults.fault_suffix, server.faults.truncate_at = ".zip", 300_000
    with pytest.raises(MmrecError, match="failed after 3 attempts") as err:
        download_dataset(_cfg(server, tmp_path, retries=3))
    assert "connection broken" in str(err.value) or "transfer ended" in str(err.value)
    _assert_no_outputs(tmp_path)
    part = DatasetPaths.of(tmp_path, NAME).downloads / f"{ZIP}.part"
    assert part.stat().st_size == 300_000  # kept for a later resume
    assert server.requests_for(".zip")[-1].range == "bytes=300000-"


def test_interrupted_download_resumes_on_the_next_run(
    server: LoopbackServer, tmp_path: Path, movielens_small_zip: Path
) -> None:
    server.faults.fault_suffix = ".zip"
    server.faults.drop_after, server.faults.drops_left = 400_000, 1
    with pytest.raises(MmrecError, match="failed after 1 attempt"):
        download_dataset(_cfg(server, tmp_path, retries=1))
    _assert_no_outputs(tmp_path)
    part = DatasetPaths.of(tmp_path, NAME).downloads / f"{ZIP}.part"
    assert part.stat().st_size == 400_000

    manifest = download_dataset(_cfg(server, tmp_path, retries=1))
    assert manifest["row_counts"]["ratings"] == 100_836
    zips = server.requests_for(".zip")
    assert [r.range for r in zips] == [None, "bytes=400000-"]
    archive = DatasetPaths.of(tmp_path, NAME).downloads / ZIP
    assert archive.read_bytes() == movielens_small_zip.read_bytes()


def test_interrupted_download_resumes_within_one_run(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.faults.fault_suffix = ".zip"
    server.faults.drop_after, server.faults.drops_left = 123_457, 2
    manifest = download_dataset(_cfg(server, tmp_path, retries=3))
    assert manifest["row_counts"]["movies"] == 9_742
    assert [r.range for r in server.requests_for(".zip")] == [
        None,
        "bytes=123457-",
        "bytes=246914-",
    ]


def test_server_ignoring_range_restarts_from_zero(server: LoopbackServer, tmp_path: Path) -> None:
    downloads = DatasetPaths.of(tmp_path, NAME).downloads
    downloads.mkdir(parents=True)
    (downloads / f"{ZIP}.part").write_bytes(b"\0" * 5000)  # a stale partial file
    server.faults.fault_suffix, server.faults.ignore_range = ".zip", True
    manifest = download_dataset(_cfg(server, tmp_path))
    assert manifest["row_counts"]["ratings"] == 100_836
    assert [r.range for r in server.requests_for(".zip")] == ["bytes=5000-"]


@pytest.mark.parametrize("extra", [0, 10])
def test_complete_or_overlong_partial_file(
    server: LoopbackServer, tmp_path: Path, movielens_small_zip: Path, extra: int
) -> None:
    """A .part as long as the archive is finished (416 from the server); a longer one restarts."""
    downloads = DatasetPaths.of(tmp_path, NAME).downloads
    downloads.mkdir(parents=True)
    data = movielens_small_zip.read_bytes()
    (downloads / f"{ZIP}.part").write_bytes(data + b"x" * extra)
    manifest = download_dataset(_cfg(server, tmp_path))
    assert manifest["row_counts"]["ratings"] == 100_836
    ranges = [r.range for r in server.requests_for(".zip")]
    assert ranges == ([f"bytes={len(data)}-"] if extra == 0 else [f"bytes={len(data) + 10}-", None])


def test_bytes_corrupted_in_transit_fail_the_checksum(
    server: LoopbackServer, tmp_path: Path, movielens_small_zip: Path
) -> None:
    server.faults.fault_suffix, server.faults.corrupt_at = ".zip", 500_000
    with pytest.raises(MmrecError, match="checksum mismatch") as err:
        download_dataset(_cfg(server, tmp_path))
    assert f"expected {_md5(movielens_small_zip)}, got " in str(err.value)
    _assert_no_outputs(tmp_path)
    downloads = DatasetPaths.of(tmp_path, NAME).downloads
    assert list(downloads.iterdir()) == []  # the bad download is deleted


# ------------------------------------------------------------------ checksums


def test_wrong_checksum_option(server: LoopbackServer, tmp_path: Path) -> None:
    with pytest.raises(MmrecError, match="expected 0{32}, got .*--checksum"):
        download_dataset(_cfg(server, tmp_path, checksum="md5:" + "0" * 32))
    _assert_no_outputs(tmp_path)
    assert server.requests_for(".md5") == []


def test_sha256_checksum_option(
    server: LoopbackServer, tmp_path: Path, movielens_small_zip: Path
) -> None:
    digest = hashlib.sha256(movielens_small_zip.read_bytes()).hexdigest()
    manifest = download_dataset(_cfg(server, tmp_path, checksum=f"sha256:{digest.upper()}"))
    assert manifest["checksum"]["algorithm"] == "sha256" and manifest["checksum"]["hex"] == digest


def test_wrong_md5_file(served: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bad-md5"
    folder.mkdir()
    shutil.copyfile(served / ZIP, folder / ZIP)
    (folder / f"{ZIP}.md5").write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    with (
        LoopbackServer(folder) as srv,
        pytest.raises(MmrecError, match="expected d41d8cd98f00b204e9800998ecf8427e"),
    ):
        download_dataset(_cfg(srv, tmp_path / "data"))
    _assert_no_outputs(tmp_path / "data")


def test_missing_md5_file_asks_for_checksum(served: Path, tmp_path: Path) -> None:
    folder = tmp_path / "no-md5"
    folder.mkdir()
    shutil.copyfile(served / ZIP, folder / ZIP)
    expected = "HTTP 404.*pass --checksum"
    with LoopbackServer(folder) as srv, pytest.raises(MmrecError, match=expected):
        download_dataset(_cfg(srv, tmp_path / "data"))
    _assert_no_outputs(tmp_path / "data")


def test_corrupt_archive_with_matching_checksum(tmp_path: Path) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / ZIP).write_bytes(b"PK\x03\x04 this is not really a zip archive" * 100)
    (folder / f"{ZIP}.md5").write_text(_md5(folder / ZIP))
    with (
        LoopbackServer(folder) as srv,
        pytest.raises(MmrecError, match="corrupt or not a zip archive"),
    ):
        download_dataset(_cfg(srv, tmp_path / "data"))
    _assert_no_outputs(tmp_path / "data")


@pytest.mark.parametrize(
    "text",
    [
        "91f91ad0f0846e764ddf79cf44a0cbe1  ml-latest-small.zip\n",
        "91F91AD0F0846E764DDF79CF44A0CBE1",
        "MD5 (ml-latest-small.zip) = 91f91ad0f0846e764ddf79cf44a0cbe1\n",
        "00000000000000000000000000000000  ml-1m.zip\r\n"
        "91f91ad0f0846e764ddf79cf44a0cbe1  ml-latest-small.zip\r\n",
    ],
)
def test_md5_file_formats(text: str) -> None:
    assert parse_md5_file(text, ZIP) == "91f91ad0f0846e764ddf79cf44a0cbe1"


@pytest.mark.parametrize("text", ["", "<html>Not Found</html>", "sha256 " + "a" * 64])
def test_md5_file_without_a_digest(text: str) -> None:
    with pytest.raises(MmrecError, match="no md5 digest"):
        parse_md5_file(text, ZIP)


@pytest.mark.parametrize("spec", ["abc", "md5:123", "crc32:deadbeef", "sha256:" + "g" * 64])
def test_bad_checksum_option(spec: str) -> None:
    with pytest.raises(MmrecError, match="--checksum"):
        parse_checksum(spec)


# ------------------------------------------------------------------ safe extraction


def _zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


WANTED = {"ratings": "ratings.csv"}
MiB = 1 << 20
GOOD = b"userId,movieId,rating,timestamp\n1,1,4.0,1\n"


@pytest.mark.parametrize(
    ("members", "symlink", "message"),
    [
        ({"ml/ratings.csv": GOOD, "../evil.csv": b"x"}, None, "leaves the extraction folder"),
        ({"ml/ratings.csv": GOOD, "ml/../../evil.csv": b"x"}, None, "leaves the extraction"),
        ({"ml/ratings.csv": GOOD, "/tmp/evil.csv": b"x"}, None, "absolute path"),
        ({"ml/ratings.csv": GOOD, "C:/evil.csv": b"x"}, None, "absolute path"),
        ({"ml/ratings.csv": GOOD}, "ml/link.csv", "symlink"),
        ({"ml/other.csv": GOOD}, None, "expected a member named 'ratings.csv'"),
        ({"a/ratings.csv": GOOD, "b/ratings.csv": GOOD}, None, "several members"),
    ],
)
def test_extract_refuses_unsafe_archives(
    tmp_path: Path, members: dict[str, bytes], symlink: str | None, message: str
) -> None:
    archive = _zip(tmp_path / "a.zip", members, symlink)
    dest = tmp_path / "out" / "deep"
    with pytest.raises(MmrecError, match=message):
        extract_members(archive, WANTED, dest, max_member_bytes=MiB, max_total_bytes=MiB)
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path / "out" / "evil.csv").exists()
    assert list(dest.rglob("*")) == []


def test_extract_bounds_sizes(tmp_path: Path) -> None:
    big = b"1,1,4.0,1\n" * 10_000  # 100 kB, compresses to almost nothing
    archive = _zip(tmp_path / "a.zip", {"ml/ratings.csv": big, "ml/tags.csv": big})
    with pytest.raises(MmrecError, match="over the limit of 50,000"):
        extract_members(
            archive, WANTED, tmp_path / "o1", max_member_bytes=50_000, max_total_bytes=MiB
        )
    both = {"ratings": "ratings.csv", "tags": "tags.csv"}
    with pytest.raises(MmrecError, match="total 200,000 bytes, over the limit"):
        extract_members(
            archive, both, tmp_path / "o2", max_member_bytes=MiB, max_total_bytes=150_000
        )
    out = extract_members(archive, both, tmp_path / "o3", max_member_bytes=MiB, max_total_bytes=MiB)
    assert out["ratings"].read_bytes() == big and out["ratings"].parent.name == "ml"


def test_extract_rejects_a_member_larger_than_its_header_says(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"ml/ratings.csv": b"1,1,4.0,1\n" * 10_000})
    data = bytearray(archive.read_bytes())
    # Lower the declared size (central directory) so only the decompressor knows the truth.
    with zipfile.ZipFile(archive) as zf:
        info = zf.infolist()[0]
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    assert info.file_size == 100_000
    with pytest.raises(MmrecError, match="corrupt|size limit"):
        extract_members(archive, WANTED, tmp_path / "o", max_member_bytes=5000, max_total_bytes=MiB)


def test_extract_reports_a_corrupt_member(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"ml/ratings.csv": GOOD * 50})
    data = bytearray(archive.read_bytes())
    start = data.find(b"ml/ratings.csv") + len("ml/ratings.csv") + 5
    data[start : start + 8] = b"\xff" * 8  # damage the compressed stream
    archive.write_bytes(bytes(data))
    with pytest.raises(MmrecError, match="member 'ml/ratings.csv' is corrupt"):
        extract_members(archive, WANTED, tmp_path / "o", max_member_bytes=MiB, max_total_bytes=MiB)


def test_zip_slip_archive_over_http_leaves_nothing(
    tmp_path: Path, movielens_small_zip: Path
) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    with zipfile.ZipFile(movielens_small_zip) as src, zipfile.ZipFile(folder / ZIP, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("ml-latest-small/../../../escaped.txt", b"gotcha")
    (folder / f"{ZIP}.md5").write_text(_md5(folder / ZIP))
    with (
        LoopbackServer(folder) as srv,
        pytest.raises(MmrecError, match="escaped.txt.*leaves the extraction folder"),
    ):
        download_dataset(_cfg(srv, tmp_path / "data"))
    _assert_no_outputs(tmp_path / "data")
    assert list(tmp_path.rglob("escaped.txt")) == []


# ------------------------------------------------------------------ the real CLI


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "mmrec"
    return subprocess.run(
        [str(exe), "data", "download", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": str(exe.parent), "MMREC_NO_PROGRESS": "1", "HOME": str(cwd)},
    )


def test_cli_download_succeeds(server: LoopbackServer, tmp_path: Path) -> None:
    data = tmp_path / "d"
    args = (NAME, "--base-url", server.url, "--data-dir", str(data))
    done = _cli(*args, "--retries", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ratings: 100,836" in done.stdout and "movies: 9,742" in done.stdout
    assert "tags: 3,683" in done.stdout
    assert DatasetPaths.of(data, NAME).ratings.exists()
    again = _cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "already up to date" in again.stdout


def test_cli_wrong_md5_exits_nonzero_with_one_line(served: Path, tmp_path: Path) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copyfile(served / ZIP, folder / ZIP)
    (folder / f"{ZIP}.md5").write_text(f"{'ab' * 16}  {ZIP}\n")
    data = tmp_path / "d"
    with LoopbackServer(folder) as srv:
        done = _cli(NAME, "--base-url", srv.url, "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "checksum mismatch" in lines[0] and f"expected {'ab' * 16}" in lines[0]
    assert not DatasetPaths.of(data, NAME).ratings.exists()
