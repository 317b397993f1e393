"""`mmrec enrich`: posters and synopses for a real MovieLens dataset (TMDB, IMDb or local files)."""

from __future__ import annotations

import argparse

from mmrec.commands import stage_command
from mmrec.config import EnrichConfig
from mmrec.options import config_from


def register(sub: argparse._SubParsersAction) -> None:
    stage_command(
        sub,
        "enrich",
        EnrichConfig,
        _enrich,
        help="fetch a poster and a synopsis per movie (TMDB, IMDb or your own files)",
        description=(
            "Fetch posters and synopses for the movies of a dataset. Every poster is decoded and "
            "checked before it is kept; each movie ends up found, missing or failed with a "
            "reason in enrich_report.parquet. Reruns fetch only what is not settled yet and "
            "an interrupted run resumes. TMDB needs TMDB_READ_ACCESS_TOKEN or TMDB_API_KEY "
            "in the environment."
        ),
        example_lines=(
            "TMDB_READ_ACCESS_TOKEN=... mmrec enrich --dataset ml-latest-small --limit 20",
            "TMDB_API_KEY=... mmrec enrich --dataset ml-25m --rate 40 --concurrency 16",
            "mmrec enrich --dataset ml-latest-small --source imdb   # pip install 'mmrec[imdb]'",
            "mmrec enrich --dataset ml-1m --source local --images my_posters/ "
            "--texts plots.csv --key imdbId",
            "mmrec enrich --dataset ml-1m --source local --texts plots.parquet "
            "--key tmdbId --text-column overview --force",
        ),
    )


def _enrich(args: argparse.Namespace) -> int:
    from workflows.enrich.stage import enrich

    cfg = config_from(EnrichConfig, args)
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
