"""Process set-up shared by the stages, the command line and the benchmarks."""

from __future__ import annotations

import os
import sys


def skip_tensorflow() -> None:
    """Keep TensorFlow out of this process: Merlin imports it only to register dtype mappings
    the ETL never uses, and that import is most of the command's start-up time (3-18 s here).
    MMREC_ETL_TENSORFLOW=1 turns this off."""
    if "tensorflow" not in sys.modules and os.environ.get("MMREC_ETL_TENSORFLOW") != "1":
        sys.modules["tensorflow"] = None  # makes `import tensorflow` raise ImportError
