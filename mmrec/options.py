"""Command-line flags and argv derived from the options declared on the configs (mmrec.config).

One declaration per option (flag name, help, choices, default, on the config field) gives:
the argparse flag (`add_options`), the typed config back from the parsed flags (`config_from`),
and the flags that ask a stage for given values (`argv_of`: `mmrec run`'s per-stage invocation
and the features command's re-exec in the features environment).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmrec.config import (
    FIELD_DEFAULT,
    Opt,
    flag_of,
    opt_of,
    parse_ints,
    parse_list,
    parse_pca,
    show_value,
)
from mmrec.contracts import default_data_dir
from mmrec.errors import MmrecError

_PARSERS = {"list": parse_list, "ints": parse_ints, "pca": parse_pca}
_SCALARS: dict[str, Any] = {"int": int, "float": float, "path": Path, "str": None}


@functools.cache
def _kinds(cls: type) -> dict[str, str]:
    """Each field's kind from its annotation: int, float, path, str, bool, list, ints or pca."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = args[0]
        origin = typing.get_origin(hint)
        if origin is tuple:
            out[name] = "ints" if typing.get_args(hint)[0] is int else "list"
        elif origin is dict or origin is Mapping:
            out[name] = "pca"
        else:
            out[name] = {int: "int", float: "float", Path: "path", bool: "bool"}.get(hint, "str")
    return out


def data_dir_of(args: argparse.Namespace) -> Path:
    """--data-dir if given, else $MMREC_DATA_DIR or ./data."""
    return args.data_dir if args.data_dir is not None else default_data_dir()


def _field(cls: type, name: str) -> dataclasses.Field:
    return cls.__dataclass_fields__[name]


def _default(cls: type, name: str, spec: Opt) -> Any:
    if spec.cli_default is not FIELD_DEFAULT:
        return spec.cli_default
    f = _field(cls, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return FIELD_DEFAULT  # none: the flag is required


def add_option(
    parser: argparse.ArgumentParser,
    cls: type,
    name: str,
    *,
    flag: str | None = None,
    dest: str | None = None,
    **override: Any,
) -> None:
    """Add the flag declared on `cls.name`; `override` replaces declared `Opt` attributes."""
    spec = dataclasses.replace(opt_of(cls, name), **override)
    kind = _kinds(cls)[name]
    flag = flag or spec.flag or "--" + name.replace("_", "-")
    kw: dict[str, Any] = {"dest": dest or name}
    if spec.help:
        kw["help"] = spec.help
    default = _default(cls, name, spec)
    if spec.switch:
        parser.add_argument(
            flag, action="store_true" if spec.switch == "on" else "store_false", **kw
        )
        return
    if spec.positional:
        parser.add_argument(dest or name, choices=spec.choices, help=spec.help or None)
        return
    if spec.repeat:
        parser.add_argument(flag, action="append", default=[], **kw)
        return
    if default is FIELD_DEFAULT:
        kw["required"] = True
    elif kind in _PARSERS and default is not None and not isinstance(default, str):
        kw["default"] = show_value(default)  # as the user would type it; parsed in config_from
    else:
        kw["default"] = default
    scalar = _SCALARS.get(kind)
    kw["type"] = spec.convert or scalar
    for key in ("choices", "nargs", "const", "metavar"):
        if getattr(spec, key) is not None:
            kw[key] = getattr(spec, key)
    parser.add_argument(flag, **kw)


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    names: Iterable[str] | None = None,
    **overrides: Mapping[str, Any],
) -> None:
    """Add the flags of `names` (default: every option of `cls`, in declaration order)."""
    if names is None:
        names = [f.name for f in dataclasses.fields(cls) if "cli" in f.metadata]
    for name in names:
        add_option(parser, cls, name, **overrides.get(name, {}))


def parse_value(cls: type, name: str, raw: Any) -> Any:
    """A parsed flag's value as the field's type (comma lists, PCA specs, repeated flags)."""
    kind = _kinds(cls)[name]
    if opt_of(cls, name).repeat:
        return tuple(raw)
    if kind in _PARSERS and isinstance(raw, str):
        try:
            return _PARSERS[kind](raw)
        except ValueError as exc:
            raise MmrecError(f"{flag_of(cls, name)}: {exc}") from None
    return raw


def config_from(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """`cls` from parsed flags: each option field from its flag, `values` taking precedence.

    A flag left at None keeps the field's own default; `data_dir` and `force` come from the
    shared `--data-dir` and `--force` flags.
    """
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kw[f.name] = values[f.name]
        elif f.name == "data_dir":
            kw["data_dir"] = data_dir_of(args)
        elif f.name == "force" and hasattr(args, "force"):
            kw["force"] = args.force
        elif "cli" in f.metadata and hasattr(args, f.name):
            raw = getattr(args, f.name)
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            if raw is None and has_default:
                continue
            kw[f.name] = parse_value(cls, f.name, raw)
    return cls(**kw)


def argv_of(cls: type, values: Mapping[str, Any]) -> list[str]:
    """The flags that give `cls`'s fields these values, in this order (None: left out).

    Values may be typed (a tuple, a PCA dict) or already the flag's text.
    """
    out: list[str] = []
    for name, value in values.items():
        spec = opt_of(cls, name)
        flag = flag_of(cls, name)
        if spec.switch:
            if value is (spec.switch == "on"):
                out.append(flag)
        elif value is None:
            continue
        elif spec.positional:
            out.append(show_value(value))
        elif spec.repeat:
            for item in value:
                out += [flag, str(item)]
        else:
            text = show_value(value)
            # `--flag=TEXT` where TEXT could be read as a flag or would vanish
            out += [f"{flag}={text}"] if text == "" or text.startswith("-") else [flag, text]
    return out


def option_fields(cls: type) -> list[str]:
    """The fields of `cls` that are command-line options, in declaration order."""
    return [f.name for f in dataclasses.fields(cls) if "cli" in f.metadata]
