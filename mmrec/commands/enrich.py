"""`mmrec enrich`: posters and synopses for a real MovieLens dataset (TMDB, IMDb or local files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples
from mmrec.config import EnrichConfig


def register(sub: argparse._SubParsersAction) -> None:
    d = EnrichConfig(dataset="", data_dir=Path("."))
    p = sub.add_parser(
        "enrich",
        help="fetch a poster and a synopsis per movie (TMDB, IMDb or your own files)",
        formatter_class=RAW,
        description=(
            "Fetch posters and synopses for the movies of a dataset. Every poster is decoded and "
            "checked before it is kept; each movie ends up found, missing or failed with a "
            "reason in enrich_report.parquet. Reruns fetch only what is not settled yet and "
            "an interrupted run resumes. TMDB needs TMDB_READ_ACCESS_TOKEN or TMDB_API_KEY "
            "in the environment."
        ),
        epilog=examples(
            "TMDB_READ_ACCESS_TOKEN=... mmrec enrich --dataset ml-latest-small --limit 20",
            "TMDB_API_KEY=... mmrec enrich --dataset ml-25m --rate 40 --concurrency 16",
            "mmrec enrich --dataset ml-latest-small --source imdb   # pip install 'mmrec[imdb]'",
            "mmrec enrich --dataset ml-1m --source local --images my_posters/ "
            "--texts plots.csv --key imdbId",
            "mmrec enrich --dataset ml-1m --source local --texts plots.parquet "
            "--key tmdbId --text-column overview --force",
        ),
    )
    p.add_argument("--dataset", required=True, help="dataset folder under --data-dir")
    p.add_argument("--source", choices=("tmdb", "imdb", "local"), default=d.source)
    p.add_argument("--images", type=Path, default=None, help="local: folder of <key>.<ext> files")
    p.add_argument(
        "--texts", type=Path, default=None, help="local: a .csv/.tsv/.jsonl/.parquet text table"
    )
    p.add_argument(
        "--key",
        choices=("movieId", "imdbId", "tmdbId"),
        default=d.key,
        help="local: the id that names image files and the table's key column",
    )
    p.add_argument("--text-column", default=d.text_column, help="local: the table's text column")
    p.add_argument("--poster-size", default=d.poster_size, help="tmdb: w92 ... w780 or original")
    p.add_argument("--tmdb-base-url", default=d.tmdb_base_url)
    p.add_argument("--tmdb-image-base-url", default=d.tmdb_image_base_url)
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="parallel requests")
    p.add_argument(
        "--rate",
        type=float,
        default=d.rate_per_s,
        help="requests per second, at most (0: no limit)",
    )
    p.add_argument("--timeout", type=float, default=d.timeout_s, help="seconds per request")
    p.add_argument("--retries", type=int, default=d.retries, help="attempts per request")
    p.add_argument("--limit", type=int, default=None, help="only the first N movies (a trial)")
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_enrich)


def _enrich(args: argparse.Namespace) -> int:
    from workflows.enrich.stage import enrich

    cfg = EnrichConfig(
        dataset=args.dataset,
        data_dir=data_dir_of(args),
        source=args.source,
        tmdb_base_url=args.tmdb_base_url,
        tmdb_image_base_url=args.tmdb_image_base_url,
        poster_size=args.poster_size,
        local_images=args.images,
        local_texts=args.texts,
        key=args.key,
        text_column=args.text_column,
        concurrency=args.concurrency,
        rate_per_s=args.rate,
        timeout_s=args.timeout,
        retries=args.retries,
        limit=args.limit,
        force=args.force,
    )
    _print_summary(enrich(cfg))
    return 0


def _print_summary(s: dict) -> None:
    status = "already up to date" if s["skipped"] else "done"
    print(
        f"{s['dataset']}: enrich {s['source']} {status} -> {s['path']} "
        f"({s['reported']:,} movies reported; fetched {s['fetched']:,}, cached {s['cached']:,}; "
        f"{s['movies_per_s']:g} movies/s, {s['requests']:,} requests, {s['retries']:,} retries)"
    )
    for part, label in (("poster", "posters"), ("synopsis", "synopses")):
        counts = ", ".join(f"{k} {v:,}" for k, v in s[part].items())
        print(f"  {label}: {counts}")
        for reason, n in list(s[f"{part}_reasons"].items())[:8]:
            print(f"    {n:>7,}  {reason}")
    for kind, info in s.get("unknown_keys", {}).items():
        if info["count"]:
            shown = ", ".join(info["examples"])
            print(f"  {kind} matching no movie: {info['count']:,} (e.g. {shown})")
