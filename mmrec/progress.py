"""Progress bars on stderr, silenced by MMREC_NO_PROGRESS=1 (tests, logs)."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress(iterable: Any = None, **kwargs: Any) -> Any:
    """A tqdm bar that writes to stderr and can be switched off without touching call sites."""
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("disable", os.environ.get("MMREC_NO_PROGRESS") == "1")
    return tqdm(iterable, **kwargs)
