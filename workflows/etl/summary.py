"""The run's record: what was split how, sizes, label balance, timings and peak memory."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its finished children (e.g. Dask workers)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / (1024 * 1024)  # KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return {"self_mb": round(own, 1), "children_mb": round(kids, 1)}


def describe_schema(schema) -> tuple[dict, dict]:
    """({column: {tags, dtype, shape}}, {categorical column: cardinality})."""
    columns, cards = {}, {}
    for col in schema:
        columns[col.name] = {
            "tags": sorted(t.value if hasattr(t, "value") else str(t) for t in col.tags),
            "dtype": str(col.dtype.name) if col.dtype is not None else None,
            "shape": [d.max if d.is_fixed else None for d in col.shape.dims]
            if col.shape.dims
            else None,
        }
        sizes = col.properties.get("embedding_sizes") or {}
        domain = col.properties.get("domain") or {}
        if "cardinality" in sizes:
            cards[col.name] = int(sizes["cardinality"])
        elif "max" in domain and "categorical" in columns[col.name]["tags"]:
            cards[col.name] = int(domain["max"]) + 1
    return columns, cards


def label_balance(rows: dict[str, int], positives: dict[str, int]) -> dict[str, dict]:
    return {
        s: {"rows": rows[s], "positives": positives[s], "positive_rate": positives[s] / rows[s]}
        for s in rows
        if rows[s]
    }
