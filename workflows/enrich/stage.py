"""The enrich stage: a poster and a synopsis per movie, from TMDB, IMDb or the user's own files.

Movies come from links.parquet; a source (tmdb | imdb | local) fetches each movie on a thread
pool, every poster is validated before it is written, and each settled movie goes to the journal
at once. The outputs (posters/, synopses.parquet, enrich_report.parquet) are rebuilt from the
journal at the end, so they always agree with each other, and an interrupted run resumes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from mmrec.config import EnrichConfig
from mmrec.errors import MmrecError
from mmrec.http import HttpClient, TokenBucket
from mmrec.io import write_json_atomic, write_table_atomic
from mmrec.paths import DatasetPaths
from mmrec.progress import progress
from mmrec.retry import RetryPolicy
from workflows.enrich.cache import FAILED, FOUND, STATUSES, Fetched, Journal, MovieKeys, Record
from workflows.enrich.images import ImageRejected, poster_files, validate_image, write_poster

SOURCES = ("tmdb", "imdb", "local")

REPORT = pa.schema(
    [
        pa.field("movieId", pa.int32(), nullable=False),
        pa.field("poster", pa.string(), nullable=False),
        pa.field("poster_reason", pa.string(), nullable=True),
        pa.field("synopsis", pa.string(), nullable=False),
        pa.field("synopsis_reason", pa.string(), nullable=True),
        pa.field("source", pa.string(), nullable=False),
    ]
)


class Source(Protocol):
    name: str

    def fingerprint(self, movie: MovieKeys) -> str: ...

    def fetch(self, movie: MovieKeys) -> Fetched: ...


def enrich(cfg: EnrichConfig, *, on_record: Callable[[dict], None] | None = None) -> dict:
    """Fetch what is not settled yet, then rebuild the outputs; returns the summary.

    `on_record` sees each journaled record (dict) as it lands: a hook for notebooks' own
    progress displays, and for tests that interrupt a run at an exact point.
    """
    start = time.monotonic()
    _check_config(cfg)
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    movies = load_movies(paths, cfg)
    _check_previous_outputs(paths, cfg)
    journal = Journal(paths.enrich_cache / f"journal-{cfg.source}.jsonl")
    api_key, token = (None, None)
    if cfg.source == "tmdb":
        from workflows.enrich.tmdb import tmdb_secrets

        api_key, token = tmdb_secrets()
    stop = threading.Event()
    client = HttpClient(
        bucket=TokenBucket(cfg.rate_per_s),
        policy=RetryPolicy(attempts=cfg.retries, backoff_s=cfg.backoff_s),
        timeout_s=cfg.timeout_s,
        secrets=(api_key or "", token or ""),
        stop=stop,
        user_agent="mmrec-enrich",
    )
    try:
        source = _open_source(cfg, movies, client, api_key, token)  # checks the inputs first
        if cfg.force:
            for old in paths.enrich_cache.glob("journal-*.jsonl"):
                old.unlink()
        done = journal.load()
        journal.open()
        selected = movies if cfg.limit is None else movies[: cfg.limit]
        todo = []
        for m in selected:
            fp = source.fingerprint(m)
            if not _settled(done.get(m.movieId), fp, paths.posters):
                todo.append((m, fp))
        fetched = _run(todo, source, cfg, paths, journal, stop, on_record)
    finally:
        journal.close()
        client.close()

    outputs = (paths.synopses, paths.enrich_report)
    rewrite = fetched > 0 or cfg.force or not all(p.exists() for p in outputs)
    ids = {m.movieId for m in movies}
    records = {k: r for k, r in journal.load().items() if k in ids}
    if rewrite:
        records = _write_outputs(paths, records)
    summary = _summary(cfg, paths, records, movies, selected, todo, fetched, client, start)
    summary["skipped"] = not rewrite
    unknown = getattr(source, "unknown", None)
    if unknown is not None:
        summary["unknown_keys"] = {
            k: {"count": len(v), "examples": v[:10]} for k, v in unknown.items()
        }
    if rewrite:
        if unknown is not None:
            write_json_atomic(paths.enrich_cache / "unknown_keys.json", unknown)
        write_json_atomic(paths.enrich_cache / "last_summary.json", summary)
    return summary


def load_movies(paths: DatasetPaths, cfg: EnrichConfig) -> list[MovieKeys]:
    """The dataset's movies with their ids, sorted by movieId (links.parquet, or movies.parquet
    when only movieIds are needed)."""
    import pyarrow.parquet as pq

    from workflows.data.schema import LINKS, MOVIES, validate_table

    if paths.links.exists():
        table = pq.read_table(paths.links)
        validate_table(table, LINKS, paths.links)
        cols = ["movieId", "imdbId", "tmdbId"]
    elif cfg.source == "local" and cfg.key == "movieId" and paths.movies.exists():
        table = pq.read_table(paths.movies, columns=["movieId"])
        validate_table(table.schema, pa.schema([MOVIES.field("movieId")]), paths.movies)
        cols = ["movieId"]
    else:
        raise MmrecError(
            f"{paths.links}: not found; get the dataset first (mmrec data download ...)"
        )
    rows = table.select(cols).to_pylist()
    movies = sorted((MovieKeys(**row) for row in rows), key=lambda m: m.movieId)
    for a, b in itertools.pairwise(movies):
        if a.movieId == b.movieId:
            raise MmrecError(f"{paths.links}: movieId {a.movieId} appears more than once")
    return movies


def _check_config(cfg: EnrichConfig) -> None:
    if cfg.source not in SOURCES:
        raise MmrecError(f"--source must be one of {', '.join(SOURCES)}, not {cfg.source!r}")
    if cfg.concurrency < 1 or cfg.retries < 1 or cfg.timeout_s <= 0:
        raise MmrecError("--concurrency, --retries and --timeout must be positive")
    if cfg.limit is not None and cfg.limit < 0:
        raise MmrecError("--limit must not be negative")


def _check_previous_outputs(paths: DatasetPaths, cfg: EnrichConfig) -> None:
    """Never overwrite posters/synopses that enrich did not write, or mix two sources."""
    if cfg.force:
        return
    journals = sorted(paths.enrich_cache.glob("journal-*.jsonl"))
    names = [j.stem.removeprefix("journal-") for j in journals]
    others = [name for name in names if name != cfg.source]
    if others:
        raise MmrecError(
            f"{paths.root} was enriched from {others[0]}; rerun with --force to replace it "
            f"with --source {cfg.source}"
        )
    if not journals and (paths.synopses.exists() or poster_files(paths.posters)):
        raise MmrecError(
            f"{paths.root} already has posters or synopses.parquet that mmrec enrich did not "
            "write (a synthetic dataset comes enriched); rerun with --force to replace them"
        )


def _open_source(
    cfg: EnrichConfig,
    movies: list[MovieKeys],
    client: HttpClient,
    api_key: str | None,
    token: str | None,
) -> Source:
    if cfg.source == "local":
        from workflows.enrich.local import LocalSource

        return LocalSource(cfg, movies)
    if cfg.source == "imdb":
        from workflows.enrich.imdb import ImdbSource

        return ImdbSource(cfg, client)
    from workflows.enrich.tmdb import TmdbSource

    return TmdbSource(cfg, client, api_key, token)


def _settled(rec: Record | None, fingerprint: str, posters: Path) -> bool:
    """True when a rerun cannot do better: same inputs, no transient failure, poster on disk."""
    if rec is None or rec.fingerprint != fingerprint or rec.retry:
        return False
    return rec.poster != FOUND or bool(rec.poster_file and (posters / rec.poster_file).exists())


def _run(
    todo: list[tuple[MovieKeys, str]],
    source: Source,
    cfg: EnrichConfig,
    paths: DatasetPaths,
    journal: Journal,
    stop: threading.Event,
    on_record: Callable[[dict], None] | None,
) -> int:
    """Fetch `todo` on a thread pool; only this (main) thread writes the journal."""
    if not todo:
        return 0

    def work(movie: MovieKeys, fingerprint: str) -> Record:
        return _process(movie, fingerprint, source, cfg, paths.posters)

    n = 0
    bar = progress(total=len(todo), desc=f"enrich {source.name}", unit="movie")
    pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="enrich")
    try:
        futures = [pool.submit(work, m, fp) for m, fp in todo]
        for fut in as_completed(futures):
            rec = fut.result()
            journal.append(rec)
            n += 1
            bar.update(1)
            if on_record is not None:
                on_record(asdict(rec))
    except BaseException:
        stop.set()  # workers abandon their movie at the next request or backoff
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return n


def _process(
    movie: MovieKeys, fingerprint: str, source: Source, cfg: EnrichConfig, posters: Path
) -> Record:
    """One movie: fetch, validate and store the poster, and describe the outcome."""
    got = source.fetch(movie)
    poster_file = None
    if got.poster == FOUND:
        data = got.poster_bytes or b""
        try:
            limits = {"max_bytes": cfg.max_image_bytes, "max_pixels": cfg.max_image_pixels}
            info = validate_image(data, **limits)
            poster_file = write_poster(posters, movie.movieId, data, info.ext)
        except ImageRejected as exc:
            got.poster, got.poster_reason = FAILED, str(exc)
            got.retry = got.retry or got.retry_bad_image
    return Record(
        movieId=movie.movieId,
        source=source.name,
        fingerprint=fingerprint,
        poster=got.poster,
        poster_reason=got.poster_reason,
        poster_file=poster_file,
        synopsis=got.synopsis,
        synopsis_reason=got.synopsis_reason,
        text=got.text,
        retry=got.retry,
        at=time.time(),
    )


def _write_outputs(paths: DatasetPaths, records: dict[int, Record]) -> dict[int, Record]:
    """synopses.parquet and the report from the journal; posters/ made to match it exactly."""
    from workflows.data.schema import SYNOPSES

    ordered = [records[k] for k in sorted(records)]
    for rec in ordered:
        on_disk = bool(rec.poster_file) and (paths.posters / str(rec.poster_file)).exists()
        if rec.poster == FOUND and not on_disk:
            rec.poster, rec.poster_reason = FAILED, "poster file vanished from posters/; rerun"
    keep = {rec.movieId: rec.poster_file for rec in ordered if rec.poster == FOUND}
    for movie_id, files in poster_files(paths.posters).items():
        for path in files:
            if keep.get(movie_id) != path.name:
                path.unlink(missing_ok=True)
    report = pa.table(
        {
            "movieId": [r.movieId for r in ordered],
            "poster": [r.poster for r in ordered],
            "poster_reason": [r.poster_reason for r in ordered],
            "synopsis": [r.synopsis for r in ordered],
            "synopsis_reason": [r.synopsis_reason for r in ordered],
            "source": [r.source for r in ordered],
        },
        schema=REPORT,
    )
    texts = [r for r in ordered if r.synopsis == FOUND and r.text]
    synopses = pa.table(
        {
            "movieId": [r.movieId for r in texts],
            "text": [r.text for r in texts],
            "source": [r.source for r in texts],
        },
        schema=SYNOPSES,
    )
    paths.posters.mkdir(parents=True, exist_ok=True)
    write_table_atomic(paths.synopses, synopses)
    write_table_atomic(paths.enrich_report, report)
    return records


def _summary(
    cfg: EnrichConfig,
    paths: DatasetPaths,
    records: dict[int, Record],
    movies: list[MovieKeys],
    selected: list[MovieKeys],
    todo: list,
    fetched: int,
    client: HttpClient,
    start: float,
) -> dict[str, Any]:
    seconds = time.monotonic() - start
    summary: dict[str, Any] = {
        "dataset": cfg.dataset,
        "source": cfg.source,
        "path": str(paths.root),
        "movies": len(movies),
        "selected": len(selected),
        "fetched": fetched,
        "cached": len(selected) - len(todo),
        "reported": len(records),
        "requests": client.stats.requests,
        "retries": client.stats.retries,
        "seconds": round(seconds, 3),
        "movies_per_s": round(fetched / seconds, 2) if fetched and seconds > 0 else 0.0,
    }
    for part in ("poster", "synopsis"):
        statuses = Counter(getattr(r, part) for r in records.values())
        summary[part] = {s: statuses.get(s, 0) for s in STATUSES}
        reasons = Counter(
            getattr(r, f"{part}_reason") for r in records.values() if getattr(r, part) != FOUND
        )
        summary[f"{part}_reasons"] = dict(reasons.most_common())
    summary["outputs"] = {
        "posters": str(paths.posters),
        "synopses": str(paths.synopses),
        "report": str(paths.enrich_report),
    }
    return summary
