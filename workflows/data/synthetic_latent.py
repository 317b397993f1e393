"""The hidden model behind the synthetic dataset: topics, latent factors, popularity, ratings.

Everything visible in the dataset (genres, posters, synopses, ratings) is derived from these
arrays, so a later stage can be checked against them (`_truth/`). Ratings are produced in user
chunks, each from its own seeded generator, so the 25M-rating dataset streams with bounded memory
and is identical for a seed (given the same numpy, pyarrow and Pillow versions).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# Ratings 0.5..5 in half steps and roughly the shares ml-25m has (mean ~3.5, mode 4).
RATING_VALUES = np.arange(1, 11, dtype=np.float32) / 2
RATING_SHARES = np.array([0.016, 0.031, 0.016, 0.066, 0.050, 0.196, 0.125, 0.266, 0.085, 0.149])
RATING_SHARES = RATING_SHARES / RATING_SHARES.sum()

FIRST_TS = 789_652_009  # 1995-01-09, where MovieLens activity starts
LAST_TS = 1_574_327_703  # 2019-11-21, the end of ml-25m
YEAR_S = 31_556_952

CENTROID_VAR = 0.4  # share of a movie factor's variance explained by its topic (and genres)
USER_BIAS_STD = 0.45
MOVIE_BIAS_STD = 0.45
POPULARITY_ALPHA = 1.7  # Zipf exponent of movie popularity over rank
POPULARITY_BIAS_WEIGHT = 0.5  # better movies are a little more popular
CHUNK_USERS = 8_192  # users per generated ratings chunk (fixed: part of determinism)
MIN_RATINGS_PER_USER = 20  # as in MovieLens, when there are enough ratings to go round


@dataclass(frozen=True)
class Movies:
    """Per-movie hidden variables (index i is the i-th movie, ids ascending)."""

    ids: np.ndarray  # int32, ascending, with gaps like real MovieLens ids
    topic: np.ndarray  # int16 in [0, n_topics)
    factors: np.ndarray  # float32 [M, F]
    bias: np.ndarray  # float32
    popularity: np.ndarray  # float64, sums to 1
    year: np.ndarray  # int16 release year; 0 where the title carries no year
    release_ts: np.ndarray  # int64, 1 January of the release year (1995 when unknown)
    by_release: np.ndarray  # int64 movie indices ordered by release (stable)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Users:
    """Per-user hidden variables (index i is userId i + 1)."""

    factors: np.ndarray  # float32 [U, F]
    bias: np.ndarray  # float32
    n_ratings: np.ndarray  # int64, sums to the requested number of ratings
    first_ts: np.ndarray  # int64, start of the user's activity
    last_ts: np.ndarray  # int64, end of the user's activity
    eligible: np.ndarray  # int64: the user rates only the first `eligible` movies by release

    def __len__(self) -> int:
        return len(self.bias)


@dataclass(frozen=True)
class RatingsChunk:
    user_idx: np.ndarray  # int64 index into Users
    movie_idx: np.ndarray  # int64 index into Movies
    rating: np.ndarray  # float32
    timestamp: np.ndarray  # int64
    score: np.ndarray  # float32 latent score before discretisation (for checks)


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator per purpose, so adding one stream never shifts another."""
    return np.random.default_rng([seed, *stream])


def sample_movies(n_movies: int, n_topics: int, n_factors: int, seed: int) -> Movies:
    rng = rng_for(seed, 1)
    gaps = 1 + (rng.random(n_movies) < 0.3) * rng.integers(1, 12, n_movies)
    ids = np.cumsum(gaps).astype(np.int32)
    topic_share = rng.dirichlet(np.full(n_topics, 4.0))
    topic = rng.choice(n_topics, size=n_movies, p=topic_share).astype(np.int16)
    centroids = rng.normal(0.0, np.sqrt(CENTROID_VAR), (n_topics, n_factors))
    within = rng.normal(0.0, np.sqrt(1 - CENTROID_VAR), (n_movies, n_factors))
    factors = (centroids[topic] + within).astype(np.float32)
    bias = rng.normal(0.0, MOVIE_BIAS_STD, n_movies).astype(np.float32)
    rank = rng.permutation(n_movies) + 1.0
    weight = (rank + max(1.0, n_movies / 200)) ** -POPULARITY_ALPHA
    weight *= np.exp(POPULARITY_BIAS_WEIGHT * bias)
    # Release years lean recent, like the catalogue; a few titles carry no year at all.
    year = np.clip(2019 - np.floor(rng.exponential(17.0, n_movies)), 1902, 2019).astype(np.int16)
    year[rng.random(n_movies) < 0.003] = 0
    known = np.where(year > 0, year, 1995).astype(np.int64)
    release = (known - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)
    by_release = np.argsort(release, kind="stable")
    return Movies(ids, topic, factors, bias, weight / weight.sum(), year, release, by_release)


def sample_users(
    movies: Movies, n_users: int, n_ratings: int, n_factors: int, seed: int
) -> tuple[Users, bool]:
    """Users with tastes, activity windows and rating counts.

    A user rates only movies released before their activity ends. Returns the users and
    whether that rule holds (it is dropped when the request is too dense to honour it).
    """
    rng = rng_for(seed, 2)
    n_movies = len(movies)
    factors = rng.normal(0.0, 1.0, (n_users, n_factors)).astype(np.float32)
    bias = rng.normal(0.0, USER_BIAS_STD, n_users).astype(np.float32)
    base = min(MIN_RATINGS_PER_USER, n_ratings // (2 * n_users)) if n_ratings >= n_users else 0
    first_ts = rng.integers(FIRST_TS, LAST_TS - 86_400, n_users).astype(np.int64)
    # Most users rate in a burst of days or weeks; some come back for years.
    span = np.exp(rng.normal(np.log(30 * 86_400), 2.2, n_users)).astype(np.int64)
    last_ts = np.minimum(first_ts + np.maximum(span, 600), LAST_TS)
    # stay long enough for the oldest few films to be out, so everyone can rate `base` movies
    release_sorted = movies.release_ts[movies.by_release]
    floor_ts = release_sorted[min(n_movies, max(base, 1)) - 1] + 30 * 86_400
    last_ts = np.minimum(np.maximum(last_ts, floor_ts), LAST_TS)
    first_ts = np.minimum(first_ts, last_ts - 600)
    eligible = np.searchsorted(release_sorted, last_ts, side="right").astype(np.int64)
    release_bound = int(eligible.sum()) >= 2 * n_ratings
    if not release_bound:
        eligible = np.full(n_users, n_movies, np.int64)
    counts = _ratings_per_user(rng, eligible, base, n_ratings)
    return Users(factors, bias, counts, first_ts, last_ts, eligible), release_bound


def _ratings_per_user(
    rng: np.random.Generator, cap: np.ndarray, base: int, n_ratings: int
) -> np.ndarray:
    """Heavy-tailed activity summing exactly to n_ratings, no user above their cap."""
    n_users = len(cap)
    counts = np.minimum(cap, base).astype(np.int64)
    weight = np.exp(rng.normal(0.0, 1.2, n_users))
    counts += rng.multinomial(n_ratings - int(counts.sum()), weight / weight.sum())
    while (over := counts > cap).any():
        extra = int((counts[over] - cap[over]).sum())
        counts[over] = cap[over]
        room = np.where(counts < cap, weight, 0.0)
        counts += rng.multinomial(extra, room / room.sum())
    return counts


def latent_score(movies: Movies, users: Users, u: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Noise-free taste of user u for movie m: biases plus the scaled factor dot product."""
    f = movies.factors.shape[1]
    dot = np.einsum("ij,ij->i", users.factors[u], movies.factors[m]) / np.sqrt(f)
    return users.bias[u] + movies.bias[m] + dot


def rating_cuts(movies: Movies, users: Users, noise: float, seed: int) -> np.ndarray:
    """Score thresholds that turn noisy scores into the MovieLens rating histogram.

    Taken from a pilot sample drawn like the real ratings (active users, popular movies), so the
    streamed chunks need no global pass.
    """
    rng = rng_for(seed, 3)
    n = 200_000
    u = rng.choice(len(users), n, p=users.n_ratings / users.n_ratings.sum())
    cum = np.cumsum(movies.popularity[movies.by_release])
    m = movies.by_release[_draw_positions(rng, cum, users.eligible[u])]
    score = latent_score(movies, users, u, m) + rng.normal(0.0, noise, n)
    return np.quantile(score, np.cumsum(RATING_SHARES)[:-1])


def ratings_chunks(
    movies: Movies, users: Users, noise: float, seed: int, chunk_users: int = CHUNK_USERS
) -> Iterator[RatingsChunk]:
    """All ratings, user by user in chunks, sorted by (userId, movieId) like GroupLens files."""
    cuts = rating_cuts(movies, users, noise, seed)
    cum = np.cumsum(movies.popularity[movies.by_release])
    for chunk, start in enumerate(range(0, len(users), chunk_users)):
        rng = rng_for(seed, 4, chunk)
        stop = min(start + chunk_users, len(users))
        local_u, pos = _distinct_positions(
            rng, users.n_ratings[start:stop], users.eligible[start:stop], cum
        )
        u = local_u + start
        m = movies.by_release[pos]
        order = np.lexsort((movies.ids[m], u))
        u, m = u[order], m[order]
        score = latent_score(movies, users, u, m)
        noisy = score + rng.normal(0.0, noise, len(u))
        rating = RATING_VALUES[np.searchsorted(cuts, noisy)]
        # within the user's activity window, never before the film's release
        lo = np.maximum(users.first_ts[u], movies.release_ts[m])
        hi = users.last_ts[u]
        late = lo >= hi  # only when the release rule had to be dropped
        hi = np.where(late, np.minimum(lo + YEAR_S, LAST_TS), hi)
        ts = lo + (rng.random(len(u)) * (hi - lo)).astype(np.int64)
        yield RatingsChunk(u, m, rating, ts, score.astype(np.float32))


def _draw_positions(rng: np.random.Generator, cum: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """One popularity-weighted draw per entry of `limit`, among positions [0, limit)."""
    target = rng.random(len(limit)) * cum[limit - 1]
    return np.minimum(np.searchsorted(cum, target, side="right"), limit - 1)


def _distinct_positions(
    rng: np.random.Generator, need: np.ndarray, limit: np.ndarray, cum: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each user i pick need[i] distinct positions below limit[i], by popularity.

    Draws with replacement and keeps first occurrences (the same law as sequential draws
    without replacement), topping up users left short; very heavy users, for whom that would
    take many rounds, get an exact Gumbel top-k over their movies instead.
    """
    heavy = need > np.maximum(50, limit // 10)
    kept_u: list[np.ndarray] = []
    kept_m: list[np.ndarray] = []
    have_u = np.empty(0, np.int64)
    have_m = np.empty(0, np.int64)
    short = np.flatnonzero(~heavy & (need > 0))
    deficit = need[short]
    for round_ in range(6):
        if len(short) == 0:
            break
        draws = deficit * (2**round_) + deficit // 3 + 4
        du = np.repeat(short, draws)
        dm = _draw_positions(rng, cum, limit[du])
        # previous picks first, then the new draws in order: first occurrences win
        all_u = np.concatenate([have_u, du])
        all_m = np.concatenate([have_m, dm])
        _, first = np.unique(all_u * len(cum) + all_m, return_index=True)
        first.sort()
        all_u, all_m = all_u[first], all_m[first]
        by_user = np.argsort(all_u, kind="stable")
        all_u, all_m = all_u[by_user], all_m[by_user]
        keep = _rank_within(all_u) < need[all_u]
        all_u, all_m = all_u[keep], all_m[keep]
        got = np.bincount(all_u, minlength=len(need))
        done = got[all_u] == need[all_u]
        kept_u.append(all_u[done])
        kept_m.append(all_m[done])
        have_u, have_m = all_u[~done], all_m[~done]
        short = np.unique(have_u)
        deficit = need[short] - got[short]
    # whoever is still short joins the heavy users on the exact path
    exact = np.union1d(np.flatnonzero(heavy), short)  # (their partial picks are dropped)
    log_p = np.log(np.maximum(np.diff(cum, prepend=0.0), 1e-300))
    for i in exact:
        n = int(limit[i])
        keys = log_p[:n] - np.log(-np.log(rng.random(n)))
        picked = np.argpartition(-keys, need[i] - 1)[: need[i]]
        kept_u.append(np.full(len(picked), i, np.int64))
        kept_m.append(picked.astype(np.int64))
    empty = np.empty(0, np.int64)
    return np.concatenate([empty, *kept_u]), np.concatenate([empty, *kept_m])


def _rank_within(sorted_groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of an array grouped by value."""
    n = len(sorted_groups)
    if n == 0:
        return np.empty(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.arange(n) - run_start
