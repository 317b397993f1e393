"""`mmrec report`: the evaluation JSON as markdown tables, training curves and ablation charts.

The ablation section answers one question per modality set: what does it add over the id-only
model, and over its own controls (the same model with a constant vector and with the vectors
shuffled across movies)? Only a gain over both controls is credited to the modality's content.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mmrec.config import ReportConfig
from mmrec.contracts import DatasetPaths, TrainRunPaths
from mmrec.done import check_done, digests, record_of
from mmrec.errors import MmrecError
from mmrec.io import atomic_path, read_json, write_json_atomic
from models import plots

RECORD = "report.json"  # the evaluation documents' digests the report was written from

RANKING_COLS = ("auc", "logloss")
RETRIEVAL_COLS = ("recall@10", "recall@50", "ndcg@10", "mrr")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return out


def _set_name(mods: list[str]) -> str:
    return "+".join(mods) if mods else "ids only"


def _groups(doc: dict[str, Any], kind: str) -> list[str]:
    if kind == "ranking":
        return ["all", "warm", "cold"] if doc.get("cold_items") else ["all"]
    return ["all", "cold"] if doc.get("cold_items") else ["all"]


def _section(doc: dict[str, Any], runs_dir: Path, out: Path) -> tuple[list[str], list[str]]:
    etl = doc["etl_run"]
    lines = [
        f"## ETL run `{etl}` (split: {doc.get('split')}, cold movies: {doc.get('cold_items')})",
        "",
    ]
    made: list[str] = []
    base = doc["baselines"]
    runs = doc["runs"]
    for kind, model, cols, metric in (
        ("ranking", "dlrm", RANKING_COLS, "auc"),
        ("retrieval", "two-tower", RETRIEVAL_COLS, "recall@10"),
    ):
        mine = {k: v for k, v in runs.items() if v["model"] == model}
        groups = _groups(doc, kind)
        header = ["scorer", "modalities", "control"] + [f"{c} ({g})" for g in groups for c in cols]
        rows = []
        for name, m in base[kind].items():
            rows.append(
                [f"baseline: {name}", "-", "-"]
                + [m.get(g, {}).get(c, float("nan")) for g in groups for c in cols]
            )
        for _name, r in sorted(mine.items()):
            m = r["metrics"][kind]
            rows.append(
                [model, _set_name(r["modalities"]), r["control"]]
                + [m.get(g, {}).get(c, float("nan")) for g in groups for c in cols]
            )
        lines += [f"### {model} ({kind})", "", *_table(header, rows), ""]
        if not mine:
            lines += [f"No {model} runs evaluated.", ""]
            continue
        if kind == "retrieval":
            lines += [
                "Retrieval ranks every movie (not in-batch), excluding what the user rated in"
                " train; relevant = the user's valid positives. `cold` ranks only the cold movies.",
                "",
            ]
        # ablation: values[group][set][control]
        values: dict[str, dict[str, dict[str, float]]] = {g: {} for g in groups}
        for r in mine.values():
            s = _set_name(r["modalities"])
            for g in groups:
                v = r["metrics"][kind].get(g, {}).get(metric, float("nan"))
                values[g].setdefault(s, {})[r["control"]] = v
        order = ["ids only", "text", "image", "text+image"]
        for g in groups:
            values[g] = {
                s: values[g][s]
                for s in sorted(values[g], key=lambda s: (order.index(s) if s in order else 9, s))
            }
        gain_rows = []
        for g in groups:
            ids_only = values[g].get("ids only", {}).get("none", float("nan"))
            for s, by_control in values[g].items():
                if s == "ids only":
                    continue
                v = by_control.get("none", float("nan"))
                gain_rows.append(
                    [
                        g,
                        s,
                        v,
                        v - ids_only,
                        v - by_control.get("constant", float("nan")),
                        v - by_control.get("shuffled", float("nan")),
                    ]
                )
        if gain_rows:
            lines += [
                f"Ablation ({metric}): gain of each modality set over the id-only model and"
                " over its own controls.",
                "",
            ]
            header = ["items", "modalities", metric, "vs ids only", "vs constant", "vs shuffled"]
            lines += [*_table(header, gain_rows), ""]
        if kind == "ranking":
            blines = {
                g: {
                    f"baseline {k}": v.get(g, {}).get(metric, float("nan"))
                    for k, v in base["ranking"].items()
                    if k in ("user_movie_rate",)
                }
                for g in groups
            }
        else:
            blines = {
                g: {
                    "baseline popularity": base["retrieval"]["popularity"]
                    .get(g, {})
                    .get(metric, float("nan"))
                }
                for g in groups
            }
        chart = plots.ablation_chart(
            values,
            blines,
            metric,
            out / f"{etl}.{model}.ablation.png",
            f"{model} {metric} by modality set ({etl})",
        )
        histories = {}
        for name in mine:
            f = TrainRunPaths(runs_dir / name).history
            if f.exists():
                histories[name] = read_json(f)
        curves = plots.training_curves(
            histories, out / f"{etl}.{model}.curves.png", f"{model} training ({etl})"
        )
        made += [str(chart), str(curves)]
        lines += [f"![ablation]({chart.name})", "", f"![training curves]({curves.name})", ""]
    return lines, made


def report(cfg: ReportConfig) -> dict[str, Any]:
    """Write `<out>/report.md` and its PNGs from `<root>/evaluation/*.json`."""
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    docs = sorted(paths.evaluation.glob("*.json"))
    if not docs:
        raise MmrecError(f"no evaluation under {paths.evaluation}; run `mmrec evaluate` first")
    out = Path(cfg.out) if cfg.out else paths.root / "report"
    target = out / "report.md"
    record = out / RECORD
    made_from = digests(docs)  # a new evaluation: written again
    if target.exists() and check_done(record, {}, force=cfg.force, inputs=made_from) is not None:
        return {
            "markdown": str(target),
            "plots": sorted(map(str, out.glob("*.png"))),
            "skipped": True,
        }
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# mmrec report: {cfg.dataset}", ""]
    made: list[str] = []
    for d in docs:
        sec, pngs = _section(read_json(d), paths.runs, out)
        lines += sec
        made += pngs
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_json_atomic(record, record_of({}, made_from))
    return {"markdown": str(target), "plots": made}
