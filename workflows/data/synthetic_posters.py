"""Posters for the synthetic dataset: small images whose look is driven by the hidden model.

The topic picks the hue family and the main motif; the latent factors set brightness,
saturation, gradient, motif size, position, count and accent colour; pixel noise and jitter
(scaled by `content_noise`) keep the mapping noisy. An image model therefore sees the topic
clearly and the factors dimly, as with real posters. Every poster has its own seeded generator,
so output does not depend on order or on how the work is split.
"""

from __future__ import annotations

import colorsys
import io
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

N_VISUAL_FACTORS = 8  # factors beyond the eighth do not show on posters
MOTIFS = ("disc", "triangle", "bands", "stripes", "rings", "blocks")


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def render_poster(
    seed: int,
    movie_id: int,
    topic: int,
    factors: np.ndarray,
    n_topics: int,
    size: tuple[int, int],
    noise: float,
) -> Image.Image:
    """Draw one poster (RGB, size = (width, height))."""
    rng = np.random.default_rng([seed, 5, movie_id])
    w, h = size
    f = np.zeros(N_VISUAL_FACTORS)
    k = min(len(factors), N_VISUAL_FACTORS)
    seen = np.tanh((np.asarray(factors[:k], dtype=np.float64) + rng.normal(0, noise, k)) / 1.5)
    f[:k] = seen
    hue = topic / n_topics + rng.normal(0, 0.02 * noise)
    sat = 0.55 + 0.35 * f[1]
    val = 0.6 + 0.3 * f[0]
    top = np.array(_hsv(hue, sat, val), dtype=np.float64)
    bottom = np.array(_hsv(hue + 0.08 * f[7], sat, val * (0.55 + 0.3 * f[7])), dtype=np.float64)
    t = np.linspace(0.0, 1.0, h)[:, None]
    column = (top * (1 - t) + bottom * t).astype(np.uint8)  # [h, 3]
    img = Image.fromarray(np.ascontiguousarray(np.broadcast_to(column[:, None], (h, w, 3))), "RGB")
    draw = ImageDraw.Draw(img)

    accent = _hsv(hue + 0.5 + 0.12 * f[5], 0.7 + 0.25 * f[1], 0.65 + 0.3 * f[2])
    cx = w * (0.5 + 0.3 * f[6]) + rng.normal(0, 3 * noise)
    cy = h * (0.4 - 0.2 * f[2]) + rng.normal(0, 3 * noise)
    radius = w * (0.25 + 0.15 * f[3])
    count = 2 + round(2.5 * (f[4] + 1))  # 2..7
    motif = MOTIFS[topic % len(MOTIFS)]
    if motif == "disc":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=accent)
    elif motif == "triangle":
        draw.polygon(
            [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
            fill=accent,
        )
    elif motif == "bands":
        pitch = 2.5 * radius / count
        for i in range(count):
            y0 = cy - radius + i * pitch
            draw.rectangle((0, y0, w, y0 + pitch / 2), fill=accent)
    elif motif == "stripes":
        step = w / count
        for i in range(count + 2):
            x0 = i * step - radius / 2
            draw.polygon(
                [(x0, h), (x0 + step / 2, h), (x0 + step / 2 + h / 2, 0), (x0 + h / 2, 0)],
                fill=accent,
            )
    elif motif == "rings":
        for i in range(count, 0, -1):
            r = radius * i / count * 1.3
            colour = accent if i % 2 else tuple(int(c) for c in top)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:  # blocks
        cell = max(4.0, radius / 2)
        for i in range(count):
            for j in range(count):
                if (i + j) % 2 == 0:
                    x0, y0 = cx - cell * count / 2 + i * cell, cy - cell * count / 2 + j * cell
                    draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=accent)

    # a title block with text-like marks, as posters have
    ty = int(h * 0.8 + rng.integers(-3, 4))
    draw.rectangle((0, ty, w, h), fill=(20, 20, 20) if val > 0.55 else (235, 235, 235))
    ink = (235, 235, 235) if val > 0.55 else (20, 20, 20)
    x = 4
    while x < w - 8:
        glyph = int(rng.integers(3, 9))
        draw.rectangle((x, ty + 6, x + glyph, ty + 11), fill=ink)
        x += glyph + int(rng.integers(2, 5))

    # pixel noise: a random window of a fixed noise bank (drawing fresh noise per poster costs
    # more than everything else together)
    bank = _noise_bank(w, h)
    k, dy, dx = rng.integers(0, len(bank)), rng.integers(0, _PAD), rng.integers(0, _PAD)
    arr = np.asarray(img, dtype=np.float32)
    arr += bank[k, dy : dy + h, dx : dx + w] * np.float32(4.0 + 10.0 * noise)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


_PAD = 32
_BANKS: dict[tuple[int, int], np.ndarray] = {}


def _noise_bank(w: int, h: int) -> np.ndarray:
    if (w, h) not in _BANKS:
        rng = np.random.default_rng(20_240_601)
        _BANKS[(w, h)] = rng.standard_normal((16, h + _PAD, w + _PAD, 3), dtype=np.float32)
    return _BANKS[(w, h)]


def poster_extension(seed: int, movie_id: int) -> str:
    """Most posters are JPEG like TMDB's, some PNG, so readers must handle both."""
    return "png" if (seed * 7919 + movie_id * 104_729) % 5 == 0 else "jpg"


def encode(img: Image.Image, ext: str) -> bytes:
    buf = io.BytesIO()
    if ext == "png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def corrupt(data: bytes, seed: int, movie_id: int) -> bytes:
    """What a failed download leaves behind: a cut-off file, an HTML error page, or noise."""
    rng = np.random.default_rng([seed, 6, movie_id])
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return data[: max(40, len(data) // 3)]
    if kind == 1:
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
    return rng.integers(0, 256, 600, dtype=np.uint8).tobytes()


def write_poster(
    out_dir: Path,
    seed: int,
    movie_id: int,
    topic: int,
    factors: np.ndarray,
    n_topics: int,
    size: tuple[int, int],
    noise: float,
    broken: bool,
) -> str:
    """Render, encode (and maybe spoil) one poster; returns its file name."""
    ext = poster_extension(seed, movie_id)
    data = encode(render_poster(seed, movie_id, topic, factors, n_topics, size, noise), ext)
    if broken:
        data = corrupt(data, seed, movie_id)
    name = f"{movie_id}.{ext}"
    (out_dir / name).write_bytes(data)
    return name


def write_posters(
    folder: Path,
    seed: int,
    ids: np.ndarray,
    topics: np.ndarray,
    factors: np.ndarray,
    broken: np.ndarray,
    n_topics: int,
    size: tuple[int, int],
    noise: float,
    *,
    workers: int | None = None,
    min_parallel: int = 4_000,
    on_done: Callable[[int], object] | None = None,
) -> int:
    """Write posters for the given movies, in worker processes when there are many.

    Each poster depends only on its own movie, so the files are the same however the work is
    split. Forked workers (where available) avoid re-importing the caller's main module.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = len(ids)
    jobs = [
        (folder, seed, ids[a : a + _BATCH], topics[a : a + _BATCH], factors[a : a + _BATCH],
         broken[a : a + _BATCH], n_topics, size, noise)
        for a in range(0, n, _BATCH)
    ]  # fmt: skip
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    report = on_done or (lambda k: None)
    if workers > 1 and n >= min_parallel and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for done in pool.imap_unordered(_write_batch, jobs):
                report(done)
    else:
        for job in jobs:
            report(_write_batch(job))
    return n


_BATCH = 256


def _write_batch(job: tuple) -> int:
    folder, seed, ids, topics, factors, broken, n_topics, size, noise = job
    for mid, topic, f, bad in zip(ids, topics, factors, broken, strict=True):
        write_poster(folder, seed, int(mid), int(topic), f, n_topics, size, noise, bool(bad))
    return len(ids)


def motif_of(topic: int) -> str:
    return MOTIFS[topic % len(MOTIFS)]
