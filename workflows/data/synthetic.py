"""`mmrec data synthetic`: a MovieLens-format dataset with posters, synopses and a planted signal.

It writes what `mmrec data download` plus `mmrec enrich` would write for a real MovieLens
variant, so every later stage runs on it unchanged, and it also writes the hidden truth
(`_truth/`) so tests can check that a stage recovers the signal. Ratings stream to Parquet in
user chunks (bounded memory at 25M ratings), and every data file is identical for a seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmrec.config import SyntheticConfig
from mmrec.errors import MmrecError
from mmrec.io import atomic_dir, file_digest, read_json, write_json_atomic
from mmrec.paths import DatasetPaths
from mmrec.progress import progress
from workflows.data import synthetic_latent as latent
from workflows.data import synthetic_posters as posters
from workflows.data import synthetic_text as text
from workflows.data.schema import (
    LINKS,
    MOVIES,
    RATINGS,
    SYNOPSES,
    TAGS,
    schema_description,
    validate_table,
)

GENERATOR_VERSION = 2  # bump when the same parameters would give different data
ROW_GROUP_ROWS = 1 << 20
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": True}
TAGGER_SHARE = 0.1  # share of users who tag at all
TAG_RATE = 0.3  # share of a tagger's ratings that also get a tag
MISSING_TMDB_RATE = 0.01


def generate_synthetic(cfg: SyntheticConfig) -> dict:
    """Generate the dataset into `<data_dir>/<name>/`; a no-op when it already exists as asked.

    Returns the manifest (plus `path` and `skipped`).
    """
    _check(cfg)
    paths = DatasetPaths.of(cfg.data_dir, cfg.name)
    params = parameters_of(cfg)
    if not cfg.force and paths.root.exists():
        if paths.manifest.exists():
            manifest = read_json(paths.manifest)
            if manifest.get("source") == "synthetic" and manifest.get("parameters") == params:
                return {**manifest, "path": str(paths.root), "skipped": True}
            raise MmrecError(
                f"{paths.root} already holds a dataset made differently "
                f"(source {manifest.get('source')!r}, other parameters); "
                "pass --force to replace it, or choose another --name"
            )
        # logs/ is the commands' own (mmrec run opens its log there before this stage runs)
        if any(p != paths.logs for p in paths.root.iterdir()):
            raise MmrecError(
                f"{paths.root} exists, is not empty and has no manifest.json; "
                "pass --force to replace it, or choose another --name"
            )
    with atomic_dir(paths.root) as tmp:
        manifest = _generate(cfg, params, tmp, paths.root)
        if paths.logs.is_dir():  # moved, not copied: open log files keep writing into it
            os.replace(paths.logs, tmp / paths.logs.name)
    return {**manifest, "path": str(paths.root), "skipped": False}


def parameters_of(cfg: SyntheticConfig) -> dict:
    """The settings that determine the data (what a rerun must match to be a no-op)."""
    params = dataclasses.asdict(cfg)
    for key in ("data_dir", "force", "name"):
        params.pop(key)
    params["poster_size"] = list(cfg.poster_size)
    params["generator_version"] = GENERATOR_VERSION
    return params


def _check(cfg: SyntheticConfig) -> None:
    if not cfg.name or "/" in cfg.name or cfg.name.startswith((".", "_")):
        raise MmrecError(f"name: {cfg.name!r} is not a plain folder name")
    for field in ("users", "movies"):
        if getattr(cfg, field) < 1:
            raise MmrecError(f"{field}: must be at least 1, got {getattr(cfg, field)}")
    if cfg.ratings < 0:
        raise MmrecError(f"ratings: must not be negative, got {cfg.ratings}")
    if cfg.ratings > cfg.users * cfg.movies:
        raise MmrecError(
            f"ratings: {cfg.ratings:,} is more than users x movies = "
            f"{cfg.users * cfg.movies:,}; each user rates a movie at most once"
        )
    if max(cfg.users, cfg.movies) >= 2**31 - 1 or cfg.movies > 50_000_000:
        raise MmrecError("users/movies: too many for int32 ids")
    for field in ("missing_poster_rate", "missing_synopsis_rate", "corrupt_poster_rate"):
        value = getattr(cfg, field)
        if not 0.0 <= value <= 1.0:
            raise MmrecError(f"{field}: {value} is not between 0 and 1")
    if cfg.missing_poster_rate + cfg.corrupt_poster_rate > 1.0:
        raise MmrecError("missing_poster_rate + corrupt_poster_rate: more than 1")
    for field in ("rating_noise", "content_noise"):
        if getattr(cfg, field) < 0:
            raise MmrecError(f"{field}: must not be negative, got {getattr(cfg, field)}")
    w, h = cfg.poster_size
    if not (16 <= w <= 2048 and 16 <= h <= 2048):
        raise MmrecError(f"poster_size: {cfg.poster_size} is outside 16..2048 pixels a side")
    text.check_topics(cfg.n_topics, cfg.n_factors)


def _write(table: pa.Table, path: Path, schema: pa.Schema | None = None) -> None:
    if schema is not None:
        validate_table(table, schema, path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)


def _generate(cfg: SyntheticConfig, params: dict, out: Path, final_root: Path) -> dict:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    movies = latent.sample_movies(cfg.movies, cfg.n_topics, cfg.n_factors, cfg.seed)
    users, release_bound = latent.sample_users(
        movies, cfg.users, cfg.ratings, cfg.n_factors, cfg.seed
    )
    state = _content_state(cfg, movies)
    timings["latent_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tag_options, n_synopses = _write_movie_tables(cfg, movies, state, out)
    timings["movies_text_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_posters = _write_posters(cfg, movies, state, out / "posters") if cfg.posters else 0
    timings["posters_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_ratings, n_tags, movie_counts, score_corr = _write_ratings_and_tags(
        cfg, movies, users, tag_options, out
    )
    timings["ratings_s"] = time.perf_counter() - t0
    if n_ratings != cfg.ratings:  # the sampler guarantees it; a mismatch is a bug, say so
        raise MmrecError(f"ratings.parquet: wrote {n_ratings:,} rows, expected {cfg.ratings:,}")

    _write_truth(cfg, movies, users, state, movie_counts, out / "_truth")

    data_files = sorted(
        p for p in out.rglob("*.parquet") if p.is_file()
    )  # posters are covered by one digest over their names and bytes
    checksums = {str(p.relative_to(out)): "sha256:" + file_digest(p) for p in data_files}
    if cfg.posters:
        checksums["posters/"] = "sha256:" + _folder_digest(out / "posters")
    manifest = {
        "dataset": cfg.name,
        "source": "synthetic",
        "path": str(final_root),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "parameters": params,
        "row_counts": {
            "ratings": n_ratings,
            "movies": len(movies),
            "links": len(movies),
            "tags": n_tags,
            "synopses": n_synopses,
            "posters": n_posters,
            "users": int((users.n_ratings > 0).sum()),
        },
        "schema": {
            name: schema_description(schema)
            for name, schema in (
                ("ratings", RATINGS),
                ("movies", MOVIES),
                ("links", LINKS),
                ("tags", TAGS),
                ("synopses", SYNOPSES),
            )
        },  # fmt: skip
        "checksums": checksums,
        "signal": {
            **_signal(cfg, movies, state, score_corr),
            "ratings_after_release": release_bound,
        },
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _write_movie_tables(
    cfg: SyntheticConfig, movies: latent.Movies, state: dict[str, np.ndarray], out: Path
) -> tuple[list[list[str]], int]:
    """movies, links and synopses; returns each movie's candidate tags and the synopsis count."""
    ids = movies.ids
    pids = ids.tolist()
    titles, genres, synopses, tag_options = [], [], [], []
    factor_rows = movies.factors.tolist()
    topics = movies.topic.tolist()
    years = movies.year.tolist()
    for i in progress(range(len(movies)), desc="movies", unit="movie"):
        mid, topic = pids[i], topics[i]
        titles.append(text.movie_title(cfg.seed, mid, topic, years[i]))
        genres.append(text.movie_genres(cfg.seed, mid, topic))
        tag_options.append(text.movie_tags(cfg.seed, mid, topic, factor_rows[i]))
        if state["has_synopsis"][i]:
            synopses.append(
                text.synopsis(cfg.seed, mid, topic, factor_rows[i], cfg.content_noise, cfg.n_topics)
            )
    year_arr = pa.array(movies.year, pa.int16(), mask=movies.year == 0)
    _write(
        pa.Table.from_arrays(
            [pa.array(ids, pa.int32()), pa.array(titles, pa.string()), year_arr,
             pa.array(genres, pa.list_(pa.string()))],
            schema=MOVIES,
        ),
        out / "movies.parquet",
        MOVIES,
    )  # fmt: skip
    _write(_links(cfg.seed, ids), out / "links.parquet", LINKS)
    with_text = ids[state["has_synopsis"]]
    _write(
        pa.Table.from_arrays(
            [pa.array(with_text, pa.int32()), pa.array(synopses, pa.string()),
             pa.array(["synthetic"] * len(synopses), pa.string())],
            schema=SYNOPSES,
        ),
        out / "synopses.parquet",
        SYNOPSES,
    )  # fmt: skip
    return tag_options, len(synopses)


def _content_state(cfg: SyntheticConfig, movies: latent.Movies) -> dict[str, np.ndarray]:
    """Which movies lack a poster, have a corrupt one, or lack a synopsis (exact counts)."""
    m = len(movies)
    rng = latent.rng_for(cfg.seed, 8)
    order = rng.permutation(m)
    n_missing = round(cfg.missing_poster_rate * m) if cfg.posters else m
    n_corrupt = round(cfg.corrupt_poster_rate * m) if cfg.posters else 0
    has_poster = np.ones(m, bool)
    has_poster[order[:n_missing]] = False
    corrupt = np.zeros(m, bool)
    corrupt[order[n_missing : n_missing + n_corrupt]] = True
    has_synopsis = np.ones(m, bool)
    rng = latent.rng_for(cfg.seed, 9)
    has_synopsis[rng.permutation(m)[: round(cfg.missing_synopsis_rate * m)]] = False
    return {"has_poster": has_poster, "poster_corrupt": corrupt, "has_synopsis": has_synopsis}


def _links(seed: int, ids: np.ndarray) -> pa.Table:
    """Distinct IMDb and TMDB ids; a few TMDB ids missing, as in GroupLens links.csv."""
    rng = latent.rng_for(seed, 11)
    m = len(ids)
    imdb = 10_000 + np.sort(rng.choice(9_000_000, m, replace=False))
    tmdb = 2 + rng.choice(max(1_000_000, 2 * m), m, replace=False)
    missing = rng.random(m) < MISSING_TMDB_RATE
    return pa.Table.from_arrays(
        [pa.array(ids, pa.int32()), pa.array(imdb, pa.int64()),
         pa.array(tmdb, pa.int64(), mask=missing)],
        schema=LINKS,
    )  # fmt: skip


def _write_posters(
    cfg: SyntheticConfig, movies: latent.Movies, state: dict[str, np.ndarray], folder: Path
) -> int:
    todo = np.flatnonzero(state["has_poster"])
    with progress(total=len(todo), desc="posters", unit="poster") as bar:
        return posters.write_posters(
            folder,
            cfg.seed,
            movies.ids[todo],
            movies.topic[todo],
            movies.factors[todo],
            state["poster_corrupt"][todo],
            cfg.n_topics,
            cfg.poster_size,
            cfg.content_noise,
            on_done=bar.update,
        )


def _write_ratings_and_tags(
    cfg: SyntheticConfig,
    movies: latent.Movies,
    users: latent.Users,
    tag_options: list[list[str]],
    out: Path,
) -> tuple[int, int, np.ndarray, float]:
    """Stream ratings (and the tags some users leave on what they rate) chunk by chunk."""
    counts = np.array([len(o) for o in tag_options], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    flat_tags = np.array([t for o in tag_options for t in o], dtype=object)
    tagger = latent.rng_for(cfg.seed, 10).random(len(users)) < TAGGER_SHARE
    movie_counts = np.zeros(len(movies), np.int64)
    n_ratings = n_tags = 0
    # running sums for the correlation of ratings with the latent score (a manifest check)
    sx = sy = sxx = syy = sxy = 0.0
    bar = progress(total=cfg.ratings, desc="ratings", unit="rating", unit_scale=True)
    with (
        pq.ParquetWriter(out / "ratings.parquet", RATINGS, **PARQUET_OPTIONS) as rw,
        pq.ParquetWriter(out / "tags.parquet", TAGS, **PARQUET_OPTIONS) as tw,
    ):
        for chunk_no, c in enumerate(
            latent.ratings_chunks(movies, users, cfg.rating_noise, cfg.seed)
        ):
            user_ids = (c.user_idx + 1).astype(np.int32)
            movie_ids = movies.ids[c.movie_idx]
            rw.write_table(
                pa.Table.from_arrays(
                    [pa.array(user_ids), pa.array(movie_ids), pa.array(c.rating),
                     pa.array(c.timestamp)],
                    schema=RATINGS,
                ),
                row_group_size=ROW_GROUP_ROWS,
            )  # fmt: skip
            rng = latent.rng_for(cfg.seed, 12, chunk_no)
            pick = tagger[c.user_idx] & (rng.random(len(c.user_idx)) < TAG_RATE)
            if pick.any():
                m = c.movie_idx[pick]
                which = offsets[m] + rng.integers(0, 1 << 30, len(m)) % counts[m]
                tw.write_table(
                    pa.Table.from_arrays(
                        [pa.array(user_ids[pick]), pa.array(movie_ids[pick]),
                         pa.array(flat_tags[which].tolist(), pa.string()),
                         pa.array(c.timestamp[pick] + rng.integers(0, 3_600, len(m)))],
                        schema=TAGS,
                    ),
                    row_group_size=ROW_GROUP_ROWS,
                )  # fmt: skip
                n_tags += int(pick.sum())
            movie_counts += np.bincount(c.movie_idx, minlength=len(movies))
            x = c.score.astype(np.float64)
            y = c.rating.astype(np.float64)
            sx, sy = sx + x.sum(), sy + y.sum()
            sxx, syy, sxy = sxx + x @ x, syy + y @ y, sxy + x @ y
            n_ratings += len(c.user_idx)
            bar.update(len(c.user_idx))
    bar.close()
    corr = float("nan")
    if n_ratings > 1:
        cov = sxy / n_ratings - (sx / n_ratings) * (sy / n_ratings)
        vx = sxx / n_ratings - (sx / n_ratings) ** 2
        vy = syy / n_ratings - (sy / n_ratings) ** 2
        corr = cov / np.sqrt(vx * vy) if vx > 0 and vy > 0 else float("nan")
    return n_ratings, n_tags, movie_counts, corr


def _write_truth(
    cfg: SyntheticConfig,
    movies: latent.Movies,
    users: latent.Users,
    state: dict[str, np.ndarray],
    movie_counts: np.ndarray,
    folder: Path,
) -> None:
    f = cfg.n_factors
    mf = pa.FixedSizeListArray.from_arrays(pa.array(movies.factors.reshape(-1)), f)
    uf = pa.FixedSizeListArray.from_arrays(pa.array(users.factors.reshape(-1)), f)
    _write(
        pa.table(
            {
                "movieId": pa.array(movies.ids, pa.int32()),
                "topic": pa.array(movies.topic.astype(np.int32)),
                "factors": mf,
                "bias": pa.array(movies.bias),
                "popularity": pa.array(movies.popularity),
                "n_ratings": pa.array(movie_counts),
                "has_poster": pa.array(state["has_poster"]),
                "poster_corrupt": pa.array(state["poster_corrupt"]),
                "has_synopsis": pa.array(state["has_synopsis"]),
            }
        ),
        folder / "movies.parquet",
    )
    _write(
        pa.table(
            {
                "userId": pa.array(np.arange(1, len(users) + 1, dtype=np.int32)),
                "factors": uf,
                "bias": pa.array(users.bias),
                "n_ratings": pa.array(users.n_ratings),
                "first_ts": pa.array(users.first_ts),
                "last_ts": pa.array(users.last_ts),
            }
        ),
        folder / "users.parquet",
    )


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + b"\0")
        h.update(bytes.fromhex(file_digest(p)))
    return h.hexdigest()


def _signal(
    cfg: SyntheticConfig, movies: latent.Movies, state: dict[str, np.ndarray], corr: float
) -> dict:
    ids = movies.ids
    return {
        "description": (
            "rating = discretised(user_bias + movie_bias + user_factors . movie_factors / "
            "sqrt(n_factors) + N(0, rating_noise)); movie factors = topic centroid + "
            "within-topic noise; genres, title words, synopsis words, tags and poster style "
            "follow the topic and the factors (see workflows/data/synthetic_*.py)"
        ),
        "n_topics": cfg.n_topics,
        "n_factors": cfg.n_factors,
        "topic_share_of_factor_variance": latent.CENTROID_VAR,
        "user_bias_std": latent.USER_BIAS_STD,
        "movie_bias_std": latent.MOVIE_BIAS_STD,
        "rating_noise": cfg.rating_noise,
        "content_noise": cfg.content_noise,
        "popularity_zipf_alpha": latent.POPULARITY_ALPHA,
        "rating_shares": dict(
            zip(
                [str(v) for v in latent.RATING_VALUES.tolist()],
                latent.RATING_SHARES.round(4).tolist(),
                strict=True,
            )
        ),
        "corr_rating_vs_latent_score": round(corr, 4),
        "poster_factors": min(cfg.n_factors, posters.N_VISUAL_FACTORS) if cfg.posters else 0,
        "synopsis_factors": min(cfg.n_factors, len(text.FACTOR_POLES)),
        "topics": [
            {
                "topic": t,
                "theme": text.THEMES[t].name,
                "genres": list(text.THEMES[t].genres),
                "poster_motif": posters.motif_of(t),
                "poster_hue": round(t / cfg.n_topics, 4),
                "movies": int((movies.topic == t).sum()),
            }
            for t in range(cfg.n_topics)
        ],
        "movies_without_poster": ids[~state["has_poster"]].tolist() if cfg.posters else "all",
        "movies_with_corrupt_poster": ids[state["poster_corrupt"]].tolist(),
        "movies_without_synopsis": ids[~state["has_synopsis"]].tolist(),
    }
