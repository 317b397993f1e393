"""PNG plots for the report (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrec.io import atomic_path

CONTROL_ORDER = ("none", "constant", "shuffled")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, target: Path) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def training_curves(histories: dict[str, dict[str, list[float]]], target: Path, title: str) -> Path:
    """Train loss and the validation metric early stopping watched, per epoch, one line per run."""
    plt = _plt()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, hist in sorted(histories.items()):
        loss = hist.get("loss", [])
        ax_loss.plot(range(1, len(loss) + 1), loss, marker=".", label=name)
        val_key = next((k for k in ("val_auc", "val_recall@10") if k in hist), None)
        if val_key:
            vals = hist[val_key]
            ax_val.plot(range(1, len(vals) + 1), vals, marker=".", label=name)
            ax_val.set_ylabel(val_key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train loss")
    ax_val.set_xlabel("epoch")
    ax_val.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    _save(fig, target)
    plt.close(fig)
    return target


def ablation_chart(
    values: dict[str, dict[str, dict[str, float]]],
    baselines: dict[str, dict[str, float]],
    metric: str,
    target: Path,
    title: str,
    errors: dict[str, dict[str, dict[str, tuple[float, float]]]] | None = None,
) -> Path:
    """Grouped bars: x = modality set, bars = control, one panel per item group (warm, cold...).

    values[group][modality_set][control] -> metric; baselines[group][name] -> horizontal lines;
    errors (same keys) -> (lo, hi) of the interval, drawn as whiskers.
    """
    import numpy as np

    plt = _plt()
    groups = list(values)
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        sets = list(values[group])
        width = 0.8 / len(CONTROL_ORDER)
        x = np.arange(len(sets))
        for i, control in enumerate(CONTROL_ORDER):
            ys = [values[group][s].get(control, np.nan) for s in sets]
            spans = [(errors or {}).get(group, {}).get(s, {}).get(control) for s in sets]
            yerr = None
            if any(sp is not None for sp in spans):
                yerr = np.array(
                    [
                        [y - sp[0], sp[1] - y] if sp is not None and np.isfinite(y) else [0, 0]
                        for y, sp in zip(ys, spans, strict=True)
                    ]
                ).T
            bars = ax.bar(
                x + (i - 1) * width, ys, width, yerr=yerr, capsize=3, label=f"control: {control}"
            )
            for bar, y in zip(bars, ys, strict=True):
                if np.isfinite(y):
                    ax.annotate(
                        f"{y:.3f}",
                        (bar.get_x() + bar.get_width() / 2, y),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        for j, (name, y) in enumerate(sorted(baselines.get(group, {}).items())):
            if np.isfinite(y):
                ax.axhline(y, linestyle="--", linewidth=1, color=f"C{3 + j}", label=name)
        ax.set_xticks(x, sets)
        ax.set_xlabel("modalities")
        ax.set_ylabel(metric)
        ax.set_title(f"{group} items")
        finite = [
            v for s in sets for v in values[group][s].values() if v is not None and np.isfinite(v)
        ] + [v for v in baselines.get(group, {}).values() if np.isfinite(v)]
        finite += [
            b
            for s in sets
            for sp in (errors or {}).get(group, {}).get(s, {}).values()
            for b in sp
            if np.isfinite(b)
        ]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = max((hi - lo) * 0.15, 0.01)
            ax.set_ylim(max(0.0, lo - pad), hi + pad)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    _save(fig, target)
    plt.close(fig)
    return target
