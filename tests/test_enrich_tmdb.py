"""The TMDB (and IMDb post-lookup) enrich path against a real HTTP fake of TMDB on 127.0.0.1."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fake_tmdb import FakeTmdb, image_bytes, png_header_only, write_dataset
from PIL import Image

from mmrec.config import EnrichConfig
from mmrec.errors import MmrecError
from mmrec.http import HttpClient, TokenBucket
from mmrec.paths import DatasetPaths
from mmrec.retry import RetryPolicy
from workflows.data.schema import SYNOPSES
from workflows.enrich.cache import MovieKeys
from workflows.enrich.imdb import ImdbSource, TransientLookupError, movie_fields
from workflows.enrich.stage import REPORT, enrich

KEY = "k3y-5ecret-0123456789abcdef"
TOKEN = "eyJ-read-token-5ecret-abcdef0123"


@pytest.fixture
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    monkeypatch.delenv("TMDB_READ_ACCESS_TOKEN", raising=False)


def config(data_dir: Path, fake: FakeTmdb, **kw: object) -> EnrichConfig:
    base = EnrichConfig(
        dataset="ml",
        data_dir=data_dir,
        source="tmdb",
        tmdb_base_url=fake.api_base,
        tmdb_image_base_url=fake.image_base,
        concurrency=4,
        rate_per_s=500.0,
        timeout_s=0.5,
        retries=3,
        backoff_s=0.01,
    )
    return replace(base, **kw)


def report_of(data_dir: Path) -> dict[int, tuple]:
    table = pq.read_table(DatasetPaths.of(data_dir, "ml").enrich_report)
    assert table.schema.equals(REPORT)
    return {
        r["movieId"]: (r["poster"], r["poster_reason"], r["synopsis"], r["synopsis_reason"])
        for r in table.to_pylist()
    }


def everything_written(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


# movieId -> tmdbId; movie 3 has no tmdbId; tmdbId 104 is unknown to the server
LINKS = [(m, 100_000 + m, None if m == 3 else 100 + m) for m in range(1, 16)]


def serve_catalogue(fake: FakeTmdb) -> None:
    jpg, png = image_bytes("JPEG"), image_bytes("PNG", color=10)
    for tmdb in (101, 105, 106, 107, 114):
        fake.add_movie(tmdb, f"Overview of {tmdb}.", f"/p{tmdb}.jpg", jpg)
    fake.add_movie(102, "A PNG poster.", "/p102.png", png)
    fake.add_movie(108, "Truncated poster.", "/p108.jpg", jpg[: len(jpg) // 2])
    fake.add_movie(109, "Bomb poster.", "/p109.png", png_header_only(100_000, 100_000))
    fake.add_movie(110, "", None, None)
    fake.add_movie(111, "Poster gone.", "/gone.jpg", None)
    fake.add_movie(112, "Image host down.", "/p112.jpg", jpg)
    fake.add_movie(113, "Not an image.", "/p113.jpg", b"<html>oops</html>" * 20)
    fake.add_movie(115, "Too many pixels.", "/p115.png", png_header_only(9_000, 9_000))
    fake.script("/3/movie/105", "429:1")
    fake.script("/3/movie/106", "slow:1.5")
    fake.script("/3/movie/107", "500")
    fake.script("/3/movie/114", "drop")
    fake.script("/t/p/w342/p112.jpg", "500", "500", "500")


EXPECTED = {
    1: ("found", None, "found", None),
    2: ("found", None, "found", None),
    3: ("missing", "no tmdbId", "missing", "no tmdbId"),
    4: ("missing", "TMDB 404: no such movie", "missing", "TMDB 404: no such movie"),
    5: ("found", None, "found", None),
    6: ("found", None, "found", None),
    7: ("found", None, "found", None),
    8: ("failed", "cannot decode image", "found", None),
    9: ("failed", "decompression bomb refused", "found", None),
    10: ("missing", "no poster_path", "missing", "empty overview"),
    11: ("missing", "poster: 404 at the image server", "found", None),
    12: ("failed", "poster: HTTP 500 (after 3 attempts)", "found", None),
    13: ("failed", "not an image Pillow can identify", "found", None),
    14: ("found", None, "found", None),
    15: ("failed", "decompression bomb refused: 9000x9000", "found", None),
}


def assert_report(data_dir: Path, expected: dict[int, tuple] = EXPECTED) -> None:
    got = report_of(data_dir)
    assert sorted(got) == sorted(expected)
    for movie_id, (poster, p_reason, synopsis, s_reason) in expected.items():
        g = got[movie_id]
        assert (g[0], g[2]) == (poster, synopsis), (movie_id, g)
        for want, have in ((p_reason, g[1]), (s_reason, g[3])):
            assert (have is None) if want is None else have.startswith(want), (movie_id, g)


def test_tmdb_statuses_retries_and_no_key_leak(
    tmp_path: Path, api_key_env: None, capfd: pytest.CaptureFixture[str]
) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    # URLs with the key reach urllib3's debug log: it must be redacted there too.
    urllib3_log = logging.getLogger("urllib3")
    handler = logging.StreamHandler(sys.stderr)
    urllib3_log.addHandler(handler)
    old_level = urllib3_log.level
    urllib3_log.setLevel(logging.DEBUG)
    try:
        with FakeTmdb(api_key=KEY) as fake:
            serve_catalogue(fake)
            summary = enrich(config(tmp_path, fake))
            hits = list(fake.hits)
            t105 = [h.t for h in fake.hits_for("/3/movie/105")]
            n106 = len(fake.hits_for("/3/movie/106"))
            n107 = len(fake.hits_for("/3/movie/107"))
            n114 = len(fake.hits_for("/3/movie/114"))
            n112 = len(fake.hits_for("/t/p/w342/p112.jpg"))
    finally:
        urllib3_log.removeHandler(handler)
        urllib3_log.setLevel(old_level)

    assert_report(tmp_path)
    assert summary["poster"] == {"found": 6, "missing": 4, "failed": 5}
    assert summary["synopsis"] == {"found": 12, "missing": 3, "failed": 0}
    assert summary["fetched"] == 15 and summary["cached"] == 0
    # retries: 429 honoured Retry-After (1 s), the slow answer timed out, 500 and a dropped
    # connection were retried, a persistently failing image was tried `retries` times
    assert len(t105) == 2 and t105[1] - t105[0] >= 0.9
    assert (n106, n107, n114, n112) == (2, 2, 2, 3)
    assert summary["retries"] >= 1 + 1 + 1 + 1 + 2

    # credentials: on every API call, never on the image host
    api = [h for h in hits if h.path.startswith("/3/")]
    images = [h for h in hits if h.path.startswith("/t/p/")]
    assert api and images
    assert all(h.query.get("api_key") == KEY and h.query.get("language") == "en-US" for h in api)
    assert all("api_key" not in h.query and h.authorization is None for h in images)

    # outputs: posters in their real format, synopses typed, nothing else left behind
    paths = DatasetPaths.of(tmp_path, "ml")
    assert sorted(p.name for p in paths.posters.iterdir()) == [
        "1.jpg", "14.jpg", "2.png", "5.jpg", "6.jpg", "7.jpg"
    ]  # fmt: skip
    with Image.open(paths.posters / "2.png") as im:
        assert im.format == "PNG"
    syn = pq.read_table(paths.synopses)
    assert syn.schema.equals(SYNOPSES)
    assert syn.column("movieId").to_pylist() == [1, 2, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]
    assert syn.to_pylist()[0] == {"movieId": 1, "text": "Overview of 101.", "source": "tmdb"}

    err = capfd.readouterr().err
    assert "/3/movie/101" in err and "api_key=***" in err  # the debug log did run, redacted
    assert KEY not in err
    assert KEY.encode() not in everything_written(tmp_path)


def test_rerun_fetches_only_unsettled_and_force_refetches(
    tmp_path: Path, api_key_env: None
) -> None:
    write_dataset(tmp_path / "ml", LINKS)
    with FakeTmdb(api_key=KEY) as fake:
        serve_catalogue(fake)
        enrich(config(tmp_path, fake))
        fake.clear()
        second = enrich(config(tmp_path, fake))
        rerun_hits = sorted(fake.movie_hits())
        # the image host is back for 112 (its scripted 500s are used up): now found
        recovered = {**EXPECTED, 12: ("found", None, "found", None)}
        assert_report(tmp_path, recovered)
        fake.clear()
        forced = enrich(config(tmp_path, fake, force=True))
        forced_hits = sorted(set(fake.movie_hits()))
    # found, 404, no tmdbId, no poster_path: settled. Failed images: tried again.
    assert rerun_hits == [108, 109, 112, 113, 115]
    assert (second["fetched"], second["cached"]) == (5, 10)
    assert forced_hits == [100 + m for m in range(1, 16) if m != 3]
    assert forced["fetched"] == 15
    assert_report(tmp_path, recovered)
    assert (DatasetPaths.of(tmp_path, "ml").posters / "12.jpg").exists()


def test_connection_errors_are_reported_without_the_key(tmp_path: Path, api_key_env: None) -> None:
    write_dataset(tmp_path / "ml", [(1, 1, 101), (2, 2, 102)])
    with FakeTmdb(api_key=KEY) as fake:
        closed = fake.api_base  # the server goes away: connections are refused
    summary = enrich(config(tmp_path, fake, tmdb_base_url=closed, retries=2))
    report = report_of(tmp_path)
    assert summary["poster"]["failed"] == 2
    for poster, reason, synopsis, _ in report.values():
        assert (poster, synopsis) == ("failed", "failed")
        assert (
            reason.startswith("TMDB details: connection error") and "(after 2 attempts)" in reason
        )
        assert "api_key=***" in reason
    assert KEY.encode() not in everything_written(tmp_path)


def test_rate_limit_is_honoured(tmp_path: Path, api_key_env: None) -> None:
    n, rate = 30, 20.0
    write_dataset(tmp_path / "ml", [(m, m, 1000 + m) for m in range(1, n + 1)])
    with FakeTmdb(api_key=KEY) as fake:
        for m in range(1, n + 1):
            fake.add_movie(1000 + m, f"Plot {m}.", None, None)  # one request per movie
        enrich(config(tmp_path, fake, rate_per_s=rate, concurrency=8))
        times = sorted(h.t for h in fake.hits)
    assert len(times) == n
    assert times[-1] - times[0] >= (n - 1) / rate * 0.85
    # half a second holds 10 tokens; a stalled machine may release the (at most 8) threads
    # already holding reserved slots together, but never the 30 an unthrottled run would send
    busiest = max(sum(1 for t in times if t0 <= t < t0 + 0.5) for t0 in times)
    assert busiest <= 0.5 * rate + 8


def test_interrupted_run_resumes_where_it_stopped(tmp_path: Path, api_key_env: None) -> None:
    n = 20
    write_dataset(tmp_path / "ml", [(m, m, 500 + m) for m in range(1, n + 1)])
    paths = DatasetPaths.of(tmp_path, "ml")
    journaled: list[int] = []

    def stop_after_six(record: dict) -> None:
        journaled.append(record["movieId"])
        if len(journaled) == 6:
            raise KeyboardInterrupt

    with FakeTmdb(api_key=KEY) as fake:
        for m in range(1, n + 1):
            fake.add_movie(500 + m, f"Plot {m}.", f"/q{m}.jpg", image_bytes(color=m))
        with pytest.raises(KeyboardInterrupt):
            enrich(config(tmp_path, fake, concurrency=3), on_record=stop_after_six)
        assert not paths.enrich_report.exists()  # outputs only come from a finished run
        # a crash in the middle of a journal write leaves a torn line: it must be cut off
        journal = paths.enrich_cache / "journal-tmdb.jsonl"
        with open(journal, "ab") as f:
            f.write(b'{"movieId": 20, "source": "tm')
        fake.clear()
        summary = enrich(config(tmp_path, fake, concurrency=3))
        resumed = fake.movie_hits()

    assert len(journaled) == 6
    assert sorted(resumed) == sorted(500 + m for m in range(1, n + 1) if m not in journaled)
    assert (summary["fetched"], summary["cached"]) == (n - 6, 6)
    report = report_of(tmp_path)
    assert sorted(report) == list(range(1, n + 1))
    assert all(r[0] == "found" and r[2] == "found" for r in report.values())
    assert len(list(paths.posters.iterdir())) == n


def test_bearer_token_is_sent_as_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", TOKEN)
    write_dataset(tmp_path / "ml", [(1, 1, 101)])
    with FakeTmdb(token=TOKEN) as fake:
        fake.add_movie(101, "Plot.", "/a.jpg", image_bytes())
        summary = enrich(config(tmp_path, fake))
        api = [h for h in fake.hits if h.path.startswith("/3/")]
        images = [h for h in fake.hits if h.path.startswith("/t/p/")]
    assert summary["poster"]["found"] == 1 and summary["synopsis"]["found"] == 1
    assert [h.authorization for h in api] == [f"Bearer {TOKEN}"]
    assert "api_key" not in api[0].query
    assert images[0].authorization is None
    assert TOKEN.encode() not in everything_written(tmp_path)


def test_credentials_missing_or_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    monkeypatch.delenv("TMDB_READ_ACCESS_TOKEN", raising=False)
    write_dataset(tmp_path / "ml", [(1, 1, 101)])
    with FakeTmdb(api_key="the-right-key") as fake:
        fake.add_movie(101, "Plot.", None, None)
        with pytest.raises(MmrecError, match="TMDB_READ_ACCESS_TOKEN.*TMDB_API_KEY"):
            enrich(config(tmp_path, fake))
        monkeypatch.setenv("TMDB_API_KEY", KEY)
        with pytest.raises(MmrecError, match="rejected the credential") as info:
            enrich(config(tmp_path, fake))
    assert KEY not in str(info.value)


# -- IMDb: everything after the cinemagoer lookup, offline ------------------------------------
def test_imdb_movie_fields_follow_cinemagoer_keys() -> None:
    movie = {
        "title": "Heat",
        "plot": ["A group of robbers...::Anonymous", "Another summary."],
        "synopsis": ["A very long synopsis."],
        "cover url": "https://m.media-amazon.com/images/M/small.jpg",
        "full-size cover url": "https://m.media-amazon.com/images/M/full.jpg",
    }
    assert movie_fields(movie) == (
        "A group of robbers...",
        "https://m.media-amazon.com/images/M/full.jpg",
    )
    assert movie_fields({"synopsis": ["Long."], "cover url": "http://x/c.jpg"}) == (
        "Long.",
        "http://x/c.jpg",
    )
    assert movie_fields({"plot outline": "Short.", "cover url": None}) == ("Short.", None)
    assert movie_fields({"title": "No data"}) == (None, None)


def test_imdb_source_downloads_and_validates_covers(tmp_path: Path) -> None:
    calls: list[str] = []
    with FakeTmdb() as fake:
        fake.images["/w342/c1.jpg"] = image_bytes()

        def lookup(imdb_id: str) -> dict:
            calls.append(imdb_id)
            if imdb_id == "0000002" and calls.count(imdb_id) == 1:
                raise TransientLookupError("IMDb lookup failed: IMDbDataAccessError")
            if imdb_id == "0000003":
                return {}
            if imdb_id == "0000005":
                return {"title": "T", "cover url": f"{fake.url}/t/p/w342/absent.jpg"}
            cover = f"{fake.url}/t/p/w342/c1.jpg"
            return {"title": "T", "plot": [f"Plot {imdb_id}.::A. Author"], "cover url": cover}

        cfg = config(tmp_path, fake, source="imdb")
        client = HttpClient(
            bucket=TokenBucket(100), policy=RetryPolicy(attempts=3, backoff_s=0.01), timeout_s=2
        )
        source = ImdbSource(cfg, client, lookup=lookup)
        one = source.fetch(MovieKeys(1, imdbId=1, tmdbId=None))
        two = source.fetch(MovieKeys(2, imdbId=2, tmdbId=None))
        three = source.fetch(MovieKeys(3, imdbId=3, tmdbId=None))
        none = source.fetch(MovieKeys(4, imdbId=None, tmdbId=None))
        absent = source.fetch(MovieKeys(5, imdbId=5, tmdbId=None))
        client.close()

    assert (one.poster, one.synopsis, one.text) == ("found", "found", "Plot 0000001.")
    assert one.poster_bytes == image_bytes()
    assert (two.poster, two.synopsis, two.text) == ("found", "found", "Plot 0000002.")
    assert calls.count("0000002") == 2 and client.stats.retries == 1
    assert (three.poster, three.poster_reason) == ("missing", "IMDb: no such title")
    assert (none.poster, none.synopsis_reason) == ("missing", "no imdbId")
    assert (absent.poster, absent.poster_reason) == ("missing", "cover: 404 at the image server")
    assert (absent.synopsis, absent.synopsis_reason) == ("missing", "no plot or synopsis on IMDb")


def test_imdb_without_cinemagoer_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules, "imdb", None
    )  # makes `import imdb` fail like a missing package
    write_dataset(tmp_path / "ml", [(1, 1, 101)])
    cfg = EnrichConfig(dataset="ml", data_dir=tmp_path, source="imdb")
    with pytest.raises(MmrecError, match=r"cinemagoer.*pip install"):
        enrich(cfg)
