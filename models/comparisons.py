"""Every number of an evaluation with its interval, every gain the report claims with its own.

Input: what each scorer (a trained run or a baseline) produced on the validation split, as plain
arrays (`Scored`). Output: JSON-ready metrics with `ci` (95% percentile bootstrap over users),
configurations (the seeds of one model + modalities + control) with their seed mean and
spread, and the ablation gains (content vs ids only, vs each control; models vs the strongest
baseline) as paired intervals with a verdict. No TensorFlow here: `mmrec evaluate` feeds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.data import Interactions
from models.intervals import (
    LEVEL,
    Interval,
    UserDraws,
    gain,
    interval,
    per_user_draws,
    ranking_draws,
    verdict,
)
from models.metrics import auc, logloss

LOWER_IS_BETTER = {"logloss"}
RANKING_GROUPS = ("all", "warm", "cold")
# the metrics an ablation gain is reported for, per kind
GAIN_METRICS = {"ranking": ("auc", "logloss"), "retrieval": ("recall@10", "ndcg@10")}
STRONGEST = {"ranking": "lightgbm", "retrieval": "ease"}


@dataclass
class Scored:
    """One scorer's output on the validation split.

    ranking: a score per valid row (in `Interactions.read` order); `probabilities` False for
    scores that are not probabilities (kNN cosines), whose logloss means nothing.
    retrieval: per candidate set ("all", "cold"), (user ids, metric -> value per user).
    """

    ranking: np.ndarray | None = None
    probabilities: bool = True
    retrieval: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # named arrays, for caching


def row_groups(valid: Interactions, cold_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Row masks of the ranking groups: all rows, and warm / cold movies when there are cold ones."""
    out = {"all": np.ones(valid.users.size, dtype=bool)}
    if cold_ids.size:
        cold = np.isin(valid.items, cold_ids)
        out["warm"], out["cold"] = ~cold, cold
    return out


class Bootstrapper:
    """The split's shared user draws, and each scorer's metric in every draw (computed once)."""

    def __init__(self, valid: Interactions, cold_ids: np.ndarray, samples: int, seed: int) -> None:
        self.valid = valid
        self.groups = row_groups(valid, cold_ids)
        self.draws = UserDraws(valid.users, samples, seed)
        self.samples, self.seed = samples, seed

    def ranking(self, scored: Scored) -> dict[str, dict[str, tuple[float, np.ndarray]]]:
        """group -> metric -> (point value, draws)."""
        out: dict[str, dict[str, tuple[float, np.ndarray]]] = {}
        v = self.valid
        for g, mask in self.groups.items():
            if not mask.any():
                continue
            y, p, u = v.labels[mask], scored.ranking[mask], v.users[mask]
            d = ranking_draws(self.draws, u, y, p)
            out[g] = {"auc": (auc(y, p), d["auc"])}
            if scored.probabilities:
                out[g]["logloss"] = (logloss(y, p), d["logloss"])
        return out

    def retrieval(self, scored: Scored) -> dict[str, dict[str, tuple[float, np.ndarray]]]:
        out = {}
        for variant, (users, values) in scored.retrieval.items():
            if users.size == 0:
                continue
            d = per_user_draws(self.draws, users, values)
            out[variant] = {m: (float(np.mean(values[m])), d[m]) for m in values}
        return out

    def info(self) -> dict[str, Any]:
        return {
            "unit": "user",
            "samples": self.samples,
            "seed": self.seed,
            "level": LEVEL,
            "users": int(self.draws.users.size),
            "method": "percentile bootstrap; every scorer shares the draws (paired)",
        }


def with_ci(metrics: dict[str, Any], resampled: dict[str, dict[str, tuple[float, np.ndarray]]]):
    """Add `ci: {metric: [lo, hi]}` to each group of a metrics dict (its values stay as they are)."""
    for g, per_metric in resampled.items():
        target = metrics.setdefault(g, {})
        target["ci"] = {m: _pair(interval(pt, d)) for m, (pt, d) in per_metric.items()}
    return metrics


def _pair(iv: Interval) -> list[float]:
    return [round(iv.lo, 6), round(iv.hi, 6)]


def _summary(iv: Interval, metric: str) -> dict[str, Any]:
    return {
        "gain": round(iv.value, 6),
        "ci": _pair(iv),
        "verdict": verdict(iv, higher_is_better=metric not in LOWER_IS_BETTER),
    }


def config_key(model: str, modalities: Iterable[str], control: str) -> str:
    mods = "+".join(modalities) or "none"
    return f"{model}.{mods}.{control}"


@dataclass
class Config:
    """The seeds of one configuration: their resampled metrics, for seed means and gains."""

    model: str
    modalities: tuple[str, ...]
    control: str
    runs: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    resampled: list[dict[str, dict[str, tuple[float, np.ndarray]]]] = field(default_factory=list)

    def groups(self) -> list[str]:
        return sorted(set().union(*(r.keys() for r in self.resampled))) if self.resampled else []

    def series(self, group: str, metric: str) -> tuple[list[float], list[np.ndarray]] | None:
        pts, draws = [], []
        for r in self.resampled:
            if metric not in r.get(group, {}):
                return None
            pt, d = r[group][metric]
            pts.append(pt)
            draws.append(d)
        return (pts, draws) if pts else None

    def summary(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        for g in self.groups():
            metrics[g] = {}
            for m in self.resampled[0].get(g, {}):
                s = self.series(g, m)
                if s is None:
                    continue
                pts, draws = s
                iv = interval(float(np.mean(pts)), np.mean(np.vstack(draws), axis=0))
                metrics[g][m] = {
                    "mean": round(iv.value, 6),
                    "std": round(float(np.std(pts, ddof=1)), 6) if len(pts) > 1 else 0.0,
                    "by_seed": [round(p, 6) for p in pts],
                    "ci": _pair(iv),
                }
        return {
            "model": self.model,
            "modalities": list(self.modalities),
            "control": self.control,
            "runs": self.runs,
            "seeds": self.seeds,
            "metrics": metrics,
        }


def compare(a: Config, b: Config, kind: str) -> dict[str, Any]:
    """Gain of A's seed mean over B's for every group and gain metric both have."""
    out: dict[str, Any] = {}
    for g in a.groups():
        for m in GAIN_METRICS[kind]:
            sa, sb = a.series(g, m), b.series(g, m)
            if sa is None or sb is None:
                continue
            out.setdefault(g, {})[m] = _summary(gain(sa[0], sa[1], sb[0], sb[1]), m)
    return out


def ablation(configs: dict[str, Config], kind: str) -> list[dict[str, Any]]:
    """Each content configuration against ids only and against its own controls."""
    model = "dlrm" if kind == "ranking" else "two-tower"
    ids_only = configs.get(config_key(model, (), "none"))
    rows = []
    for c in configs.values():
        if c.model != model or not c.modalities or c.control != "none":
            continue
        versus = {"ids only": ids_only}
        for control in ("constant", "shuffled"):
            versus[f"{control} control"] = configs.get(config_key(model, c.modalities, control))
        for name, other in versus.items():
            if other is None:
                continue
            rows.append(
                {
                    "model": model,
                    "modalities": list(c.modalities),
                    "versus": name,
                    "seeds": [len(c.seeds), len(other.seeds)],
                    "gains": compare(c, other, kind),
                }
            )
    return rows


def versus_baseline(
    configs: dict[str, Config], baseline: Config | None, kind: str
) -> list[dict[str, Any]]:
    """Every uncontrolled configuration of the kind's model against the strongest baseline."""
    if baseline is None:
        return []
    model = "dlrm" if kind == "ranking" else "two-tower"
    return [
        {
            "model": model,
            "modalities": list(c.modalities),
            "versus": f"baseline {baseline.runs[0]}",
            "gains": compare(c, baseline, kind),
        }
        for c in configs.values()
        if c.model == model and c.control == "none"
    ]
