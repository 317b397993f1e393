"""Poster validation and storage: only images that fully decode, within size limits, are kept.

Posters come from the internet or from users' folders, so a file may be truncated, not an image
at all, or a decompression bomb (a tiny file declaring billions of pixels). The features stage
decodes every poster; anything that would fail or exhaust memory there is refused here, with a
reason for the report. The original bytes are kept (no re-encoding), named by their real format.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from mmrec.http import FetchError, HttpClient
from mmrec.io import write_bytes_atomic
from workflows.enrich.cache import FAILED, FOUND, MISSING, Fetched

# Formats the features stage can read with Pillow, and the extension each is stored under.
FORMAT_EXT = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}
_POSTER_NAME = re.compile(r"^(\d+)\.([A-Za-z0-9]+)$")


class ImageRejected(Exception):
    """The bytes are not a usable poster; the message is the report's reason."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    ext: str
    width: int
    height: int
    nbytes: int


def validate_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Decode `data` completely (verify + load) or raise ImageRejected saying why.

    The pixel limit is checked from the header before any pixel is decoded, so a bomb costs
    nothing. Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS) still applies on top.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageRejected("empty file")
    if len(data) > max_bytes:
        raise ImageRejected(f"image of {len(data):,} bytes exceeds the limit of {max_bytes:,}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "unknown"
            width, height = im.size
            _check_header(fmt, width, height, max_pixels)
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image Pillow can identify") from None
    except Exception as exc:  # truncated data, bad CRCs, broken codecs: all mean "unusable"
        raise ImageRejected(f"cannot decode image: {type(exc).__name__}: {exc}") from None
    return ImageInfo(fmt, FORMAT_EXT[fmt], width, height, len(data))


def _check_header(fmt: str, width: int, height: int, max_pixels: int) -> None:
    if fmt not in FORMAT_EXT:
        raise ImageRejected(f"unsupported image format {fmt} (allowed: {', '.join(FORMAT_EXT)})")
    if width <= 0 or height <= 0:
        raise ImageRejected(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(
            f"decompression bomb refused: {width}x{height} = {width * height:,} pixels "
            f"exceeds the limit of {max_pixels:,}"
        )


def download_image(
    client: HttpClient, url: str, *, max_bytes: int, out: Fetched, what: str
) -> None:
    """GET a poster into `out` (found with bytes, missing on 404, failed otherwise).

    No credentials are sent: image hosts are not the API and must never see the API key.
    """
    try:
        resp = client.get(url, max_bytes=max_bytes, what=what)
    except FetchError as exc:
        out.poster, out.poster_reason = FAILED, exc.reason
        out.retry = out.retry or exc.retryable
        return
    if resp.status == 404:
        out.poster, out.poster_reason = MISSING, f"{what}: 404 at the image server"
    elif resp.status != 200:
        out.poster, out.poster_reason = FAILED, f"{what}: HTTP {resp.status}"
        out.retry = True
    else:
        out.poster, out.poster_bytes = FOUND, resp.body


def write_poster(posters_dir: Path, movie_id: int, data: bytes, ext: str) -> str:
    """Atomically write posters/<movieId>.<ext>, then drop the movie's files in other formats."""
    name = f"{movie_id}.{ext}"
    write_bytes_atomic(posters_dir / name, data)
    remove_posters(posters_dir, movie_id, keep=name)
    return name


def remove_posters(posters_dir: Path, movie_id: int, keep: str | None = None) -> None:
    """Delete posters/<movieId>.<any known ext> except `keep` (a stale poster must not linger)."""
    for ext in sorted(set(FORMAT_EXT.values()) | {"jpeg", "tif"}):
        name = f"{movie_id}.{ext}"
        if name != keep:
            with contextlib.suppress(FileNotFoundError):
                (posters_dir / name).unlink()


def poster_files(posters_dir: Path) -> dict[int, list[Path]]:
    """Poster files by movieId (files named <digits>.<ext>; temporary files are ignored)."""
    found: dict[int, list[Path]] = {}
    if not posters_dir.is_dir():
        return found
    for path in posters_dir.iterdir():
        m = _POSTER_NAME.match(path.name)
        if m and path.is_file():
            found.setdefault(int(m.group(1)), []).append(path)
    return found
