"""Safe extraction of the few members of a zip archive that the converter needs.

An archive from the network is untrusted input even after its checksum matches (a mirror, or
`--checksum` given by hand, can vouch for a hostile file). So every member name is checked
before anything is written: no absolute paths, no `..` (zip-slip), no symlinks, and sizes are
bounded per member and in total, both as declared and as actually decompressed (a zip bomb
can lie in its header).
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from mmrec.errors import MmrecError

_COPY_CHUNK = 1 << 20


def extract_members(
    archive: str | Path,
    wanted: dict[str, str],
    dest: str | Path,
    *,
    max_member_bytes: int,
    max_total_bytes: int,
    optional: Collection[str] = (),
) -> dict[str, Path]:
    """Extract the members named in `wanted` (role -> file name) under `dest`.

    Members are matched by file name anywhere in the archive (GroupLens puts them in a folder
    named after the variant). Returns role -> extracted path; roles in `optional` that the
    archive lacks are left out. Any unsafe member anywhere in the archive rejects the whole
    archive.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise MmrecError(f"{archive}: corrupt or not a zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        for info in infos:
            _check_member(archive, info, max_member_bytes)
        chosen = {}
        for role, name in wanted.items():
            info = _find(archive, infos, name, optional=role in optional)
            if info is not None:
                chosen[role] = info
        declared = sum(info.file_size for info in chosen.values())
        if declared > max_total_bytes:
            raise MmrecError(
                f"{archive}: the members to extract total {declared:,} bytes, over the limit "
                f"of {max_total_bytes:,}"
            )
        out: dict[str, Path] = {}
        budget = max_total_bytes
        for role, info in chosen.items():
            target = (root / PurePosixPath(info.filename.replace("\\", "/"))).resolve()
            if not target.is_relative_to(root):
                raise MmrecError(f"{archive}: member {info.filename!r} would land outside {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            written = _copy_member(archive, zf, info, target, min(max_member_bytes, budget))
            budget -= written
            out[role] = target
        return out


def _check_member(archive: Path, info: zipfile.ZipInfo, max_member_bytes: int) -> None:
    name = info.filename
    reason = _unsafe_name(name)
    if reason is not None:
        raise MmrecError(f"{archive}: refusing to extract member {name!r}: {reason}")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise MmrecError(f"{archive}: refusing to extract member {name!r}: it is a symlink")
    if info.file_size > max_member_bytes:
        raise MmrecError(
            f"{archive}: member {name!r} is {info.file_size:,} bytes, over the limit of "
            f"{max_member_bytes:,} (max_member_bytes)"
        )


def _unsafe_name(name: str) -> str | None:
    if "\x00" in name:
        return "its name contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "it has an absolute path"
    if ".." in norm.split("/"):
        return "its path leaves the extraction folder (..)"
    return None


def _find(
    archive: Path, infos: list[zipfile.ZipInfo], name: str, optional: bool
) -> zipfile.ZipInfo | None:
    matches = [
        i
        for i in infos
        if not i.is_dir()
        and PurePosixPath(i.filename.replace("\\", "/")).name == name
        and "__MACOSX" not in i.filename
    ]
    if not matches:
        if optional:
            return None
        raise MmrecError(f"{archive}: expected a member named {name!r}; the archive has none")
    if len(matches) > 1:
        names = ", ".join(i.filename for i in matches)
        raise MmrecError(f"{archive}: several members named {name!r} ({names}); which one?")
    return matches[0]


def _copy_member(
    archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int
) -> int:
    written = 0
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            while block := src.read(_COPY_CHUNK):
                written += len(block)
                if written > limit:
                    raise MmrecError(
                        f"{archive}: member {info.filename!r} decompresses to more than "
                        f"{limit:,} bytes; refusing (size limit)"
                    )
                dst.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        target.unlink(missing_ok=True)
        raise MmrecError(f"{archive}: member {info.filename!r} is corrupt ({exc})") from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written
