"""`mmrec report`: the evaluation JSON as markdown tables, training curves and ablation charts.

It opens with the question the project exists for, per modality set: what does it add over
the id-only model, and over its own controls (the same model with a constant vector and with the
vectors shuffled across movies)? Each gain carries its paired bootstrap interval and a verdict
(helps / no evidence / hurts); only a gain over both controls is credited to the content.
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


PRIMARY = {"ranking": "auc", "retrieval": "recall@10"}
MODEL_OF = {"ranking": "dlrm", "retrieval": "two-tower"}
SET_ORDER = ["ids only", "text", "image", "text+image"]
VERSUS_ORDER = {"ids only": 0, "constant control": 1, "shuffled control": 2}


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


def _with_ci(group: dict[str, Any], metric: str) -> str:
    """`0.8123 [0.8071, 0.8170]`, or the bare value when there is no interval."""
    v = group.get(metric, float("nan"))
    ci = group.get("ci", {}).get(metric)
    if ci is None or not isinstance(v, float) or math.isnan(v):
        return _fmt(v)
    return f"{v:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"


def _gain_cell(g: dict[str, Any] | None) -> str:
    if not g:
        return "n/a"
    lo, hi = g["ci"]
    return f"{g['gain']:+.4f} [{lo:+.4f}, {hi:+.4f}] **{g['verdict']}**"


def _headline(doc: dict[str, Any]) -> list[str]:
    """The table a user reads first: what each modality set adds, with intervals and verdicts."""
    boot = doc.get("bootstrap", {})
    lines = [
        "### What content is worth",
        "",
        f"Gain of each modality set over the id-only model and over its own controls (a constant"
        f" vector; vectors shuffled across movies), with a 95% paired bootstrap interval over"
        f" {boot.get('users', '?')} users ({boot.get('samples', '?')} draws). A gain is called"
        " **helps** or **hurts** only when its interval excludes zero. Seeds of a configuration"
        " are averaged first.",
        "",
    ]
    any_rows = False
    for kind in ("ranking", "retrieval"):
        rows_in = doc.get("ablation", {}).get(kind, [])
        if not rows_in:
            continue
        any_rows = True
        metric = PRIMARY[kind]
        groups = _groups(doc, kind)
        header = ["model", "modalities", "versus", "seeds"] + [
            f"{metric} gain ({g})" for g in groups
        ]
        rows = []
        for r in sorted(
            rows_in,
            key=lambda r: (SET_ORDER.index(_set_name(r["modalities"])), VERSUS_ORDER[r["versus"]]),
        ):
            rows.append(
                [
                    r["model"],
                    _set_name(r["modalities"]),
                    r["versus"],
                    "/".join(map(str, r["seeds"])),
                ]
                + [_gain_cell(r["gains"].get(g, {}).get(metric)) for g in groups]
            )
        lines += [*_table(header, rows), ""]
    if not any_rows:
        lines += ["No content run with an id-only run or a control to compare against.", ""]
    vs = doc.get("versus_baselines", {})
    for kind, rows_in in vs.items():
        if not rows_in:
            continue
        metric = PRIMARY[kind]
        groups = _groups(doc, kind)
        lines += [f"Against the strongest {kind} baseline ({rows_in[0]['versus']}):", ""]
        header = ["model", "modalities"] + [f"{metric} gain ({g})" for g in groups]
        if kind == "ranking":
            header += ["logloss change (all)"]
        rows = []
        for r in rows_in:
            row = [r["model"], _set_name(r["modalities"])]
            row += [_gain_cell(r["gains"].get(g, {}).get(metric)) for g in groups]
            if kind == "ranking":
                row.append(_gain_cell(r["gains"].get("all", {}).get("logloss")))
            rows.append(row)
        lines += [*_table(header, rows), ""]
    return lines


def _config_values(
    doc: dict[str, Any], model: str, metric: str, groups: list[str]
) -> tuple[dict, dict]:
    """values[group][set][control] (seed means) and errors[group][set][control] = (lo, hi)."""
    values: dict[str, dict[str, dict[str, float]]] = {g: {} for g in groups}
    errors: dict[str, dict[str, dict[str, tuple[float, float]]]] = {g: {} for g in groups}
    for c in doc.get("configurations", {}).values():
        if c["model"] != model:
            continue
        s = _set_name(c["modalities"])
        for g in groups:
            m = c["metrics"].get(g, {}).get(metric)
            if m is None:
                continue
            values[g].setdefault(s, {})[c["control"]] = m["mean"]
            errors[g].setdefault(s, {})[c["control"]] = tuple(m["ci"])
    for g in groups:
        values[g] = {
            s: values[g][s]
            for s in sorted(
                values[g], key=lambda s: (SET_ORDER.index(s) if s in SET_ORDER else 9, s)
            )
        }
    return values, errors


def _section(doc: dict[str, Any], runs_dir: Path, out: Path) -> tuple[list[str], list[str]]:
    etl = doc["etl_run"]
    lines = [
        f"## ETL run `{etl}` (split: {doc.get('split')}, cold movies: {doc.get('cold_items')})",
        "",
        *_headline(doc),
    ]
    made: list[str] = []
    base = doc["baselines"]
    runs = doc["runs"]
    for kind, cols in (("ranking", RANKING_COLS), ("retrieval", RETRIEVAL_COLS)):
        model, metric = MODEL_OF[kind], PRIMARY[kind]
        mine = {k: v for k, v in runs.items() if v["model"] == model}
        groups = _groups(doc, kind)
        header = ["scorer", "modalities", "control", "seed"] + [
            f"{c} ({g})" for g in groups for c in cols
        ]
        rows = []
        for name, m in base[kind].items():
            rows.append(
                [f"baseline: {name}", "-", "-", "-"]
                + [_with_ci(m.get(g, {}), c) for g in groups for c in cols]
            )
        for _name, r in sorted(mine.items()):
            m = r["metrics"][kind]
            rows.append(
                [model, _set_name(r["modalities"]), r["control"], r.get("seed", "-")]
                + [_with_ci(m.get(g, {}), c) for g in groups for c in cols]
            )
        lines += [
            f"### {model} ({kind}) and baselines, every metric with its 95% interval",
            "",
            *_table(header, rows),
            "",
        ]
        if kind == "retrieval":
            lines += [
                "Retrieval ranks every movie (not in-batch), excluding what the user rated in"
                " train; relevant = the user's valid positives; ties count at their expected"
                " value under a random order. `cold` ranks only the cold movies.",
                "",
            ]
        info = doc.get("baseline_info", {})
        notes = [f"- {name}: {i['note']}" for name, i in info.items() if i.get("note")]
        if kind == "retrieval" and "ease" in info:
            notes.append(
                f"- ease: lambda {info['ease']['lambda']:g}, chosen on a slice of train"
                f" (recall@10 by lambda: {info['ease']['lambda_on_train_slice']})"
            )
        if kind == "ranking" and "lightgbm" in info:
            notes.append(
                f"- lightgbm: {info['lightgbm']['rounds']} rounds, early stopping on"
                f" {info['lightgbm']['early_stopping']}"
            )
        if notes:
            lines += [*notes, ""]
        if not mine:
            lines += [f"No {model} runs evaluated.", ""]
            continue
        values, errors = _config_values(doc, model, metric, groups)
        if kind == "ranking":
            picks = ("user_movie_rate", "lightgbm")
        else:
            picks = ("popularity", "random", "ease")
        blines = {
            g: {
                f"baseline {k}": base[kind][k].get(g, {}).get(metric, float("nan"))
                for k in picks
                if k in base[kind]
            }
            for g in groups
        }
        chart = plots.ablation_chart(
            values,
            blines,
            metric,
            out / f"{etl}.{model}.ablation.png",
            f"{model} {metric} by modality set ({etl}; bars: seed mean, whiskers: 95% interval)",
            errors=errors,
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
