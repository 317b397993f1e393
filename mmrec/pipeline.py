"""The main job: every stage in order on one dataset, resumable, ending with a summary.

Each stage runs as its own process (`python -m mmrec.cli STAGE ...`), exactly as a user would run
it, because stages exchange files only: TensorFlow and PyTorch never share a process, and any
stage can be rerun alone. A journal (`run_state.json`) records finished steps with the arguments
they ran with, so an interrupted run resumes at the first unfinished step, and a step whose
arguments changed runs again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from mmrec.config import RunConfig, SyntheticConfig
from mmrec.errors import MmrecError
from mmrec.io import read_json, write_json_atomic
from mmrec.paths import DatasetPaths
from workflows.data.variants import VARIANTS


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]


def plan(cfg: RunConfig) -> list[Step]:
    """The ordered steps for this dataset; each is one `mmrec` invocation."""
    common = ("--data-dir", str(cfg.data_dir))
    ds = ("--dataset", cfg.dataset)
    synthetic = cfg.dataset not in VARIANTS
    steps: list[Step] = []

    # data, then enrich (real MovieLens only: the synthetic data arrives enriched)
    if synthetic:
        syn = cfg.synthetic or SyntheticConfig(data_dir=cfg.data_dir, name=cfg.dataset)
        steps.append(
            Step(
                "data",
                (
                    "data",
                    "synthetic",
                    "--name",
                    cfg.dataset,
                    "--users",
                    str(syn.users),
                    "--movies",
                    str(syn.movies),
                    "--ratings",
                    str(syn.ratings),
                    "--seed",
                    str(syn.seed),
                    *common,
                ),
            )
        )
    else:
        steps.append(Step("data", ("data", "download", cfg.dataset, *common)))
        if cfg.source:
            steps.append(
                Step("enrich", ("enrich", *ds, "--source", cfg.source, *cfg.enrich_args, *common))
            )

    # features: without posters (real data, no enrich source) only text, from the fallback texts
    modalities = "text,image" if synthetic or cfg.source else "text"
    image_model = cfg.image_model or ("efficientnet-lite0" if synthetic else "resnet50")
    text_model = cfg.text_model or ("minilm" if synthetic else "facebook/bart-large")
    random_init = cfg.random_init if cfg.random_init is not None else ()
    features = ["features", *ds, "--modalities", modalities, "--text-model", text_model]
    if "image" in modalities:
        features += ["--image-model", image_model]
    if random_init:
        features += ["--random-init", ",".join(random_init)]
    if cfg.pca:
        features += [
            "--pca",
            ",".join(p for p in cfg.pca.split(",") if p.split("=")[0] in modalities),
        ]
    steps.append(Step("features", (*features, *common)))

    # etl
    split = cfg.split or ("cold-items" if synthetic else "random")
    etl_run = f"{split}-{cfg.embeddings}"
    steps.append(
        Step("etl", ("etl", *ds, "--split", split, "--embeddings", cfg.embeddings, *common))
    )

    # train: the ablation (ids only, content, content with each control), then retrieval
    content = modalities
    label = content.replace(",", "+")
    runs = [
        ("dlrm", "none", "none"),
        ("dlrm", content, "none"),
        ("dlrm", content, "constant"),
        ("dlrm", content, "shuffled"),
        ("two-tower", "none", "none"),
        ("two-tower", content, "none"),
    ]
    for model, mods, control in runs:
        name = f"{etl_run}.{model}.{mods.replace(',', '+')}.{control}"
        steps.append(
            Step(
                f"train {model} {mods} {control}",
                (
                    "train",
                    *ds,
                    "--etl-run",
                    etl_run,
                    "--model",
                    model,
                    "--modalities",
                    mods,
                    "--control",
                    control,
                    "--run-name",
                    name,
                    *common,
                ),
            )
        )
    steps.append(Step("evaluate", ("evaluate", *ds, "--etl-run", etl_run, *common)))
    steps.append(Step("report", ("report", *ds, *common)))
    if cfg.export:
        best = f"{etl_run}.dlrm.{label}.none"
        steps.append(Step("export", ("export", *ds, "--run", best, "--backend", "python", *common)))
    return steps


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """Run every planned step not already finished with the same arguments; return the summary."""
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    paths.root.mkdir(parents=True, exist_ok=True)
    state_file = paths.root / "run_state.json"
    state: dict[str, Any] = read_json(state_file) if state_file.exists() and not cfg.force else {}
    done: dict[str, Any] = state.setdefault("steps", {})
    steps = plan(cfg)
    for i, step in enumerate(steps, 1):
        previous = done.get(step.name)
        if previous and previous.get("argv") == list(step.argv):
            print(f"[{i}/{len(steps)}] {step.name}: done earlier, skipped", file=sys.stderr)
            continue
        print(f"[{i}/{len(steps)}] {step.name}: mmrec {' '.join(step.argv)}", file=sys.stderr)
        argv = list(step.argv)
        if cfg.force:
            argv.append("--force")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mmrec.cli", *argv], check=False)
        seconds = round(time.perf_counter() - t0, 2)
        if proc.returncode != 0:
            raise MmrecError(
                f"step {step.name!r} failed (exit {proc.returncode}) after {seconds} s; "
                "fix the cause above and rerun `mmrec run` to resume from this step"
            )
        done[step.name] = {"argv": list(step.argv), "seconds": seconds, "finished_at": time.time()}
        write_json_atomic(state_file, state)
    ordered = {step.name: done[step.name] for step in steps if step.name in done}
    summary = summarize(paths, ordered)
    write_json_atomic(paths.root / "run_summary.json", summary)
    return summary


def summarize(paths: DatasetPaths, done: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers from the files the stages wrote (never from memory of this process)."""
    summary: dict[str, Any] = {
        "dataset": paths.name,
        "root": str(paths.root.resolve()),
        "step_seconds": {name: info["seconds"] for name, info in done.items()},
    }
    outputs: dict[str, str] = {}
    if paths.manifest.exists():
        summary["row_counts"] = read_json(paths.manifest).get("row_counts", {})
        outputs["data"] = str(paths.root.resolve())
    for name, path in (
        ("feature store", paths.feature_store),
        ("report", paths.root / "report" / "report.md"),
        ("export", paths.export),
    ):
        if path.exists():
            outputs[name] = str(path.resolve())
    summary["outputs"] = outputs
    summary["headline"] = _headline(paths)
    return summary


def _headline(paths: DatasetPaths) -> dict[str, Any]:
    """AUC per DLRM run and recall@10 per two-tower run, all and cold items, from evaluate's JSON."""
    headline: dict[str, Any] = {}
    for file in sorted((paths.root / "evaluation").glob("*.json")):
        evaluation = read_json(file)
        rows = dict(evaluation.get("runs", {}))
        baselines = evaluation.get("baselines", {})
        for name, metrics in baselines.get("ranking", {}).items():
            rows[f"baseline {name}"] = {"metrics": {"ranking": metrics}}
        for name, metrics in baselines.get("retrieval", {}).items():
            rows[f"baseline {name}"] = {"metrics": {"retrieval": metrics}}
        for run, info in rows.items():
            metrics = info.get("metrics", {})
            for kind, key in (("ranking", "auc"), ("retrieval", "recall@10")):
                groups = metrics.get(kind, {})
                values = {
                    group: round(groups[group][key], 4)
                    for group in ("all", "cold")
                    if key in groups.get(group, {})
                }
                if values:
                    headline[f"{run}: {key}"] = values
    return headline


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"mmrec run: {summary['dataset']} finished; outputs in {summary['root']}"]
    for name, secs in summary.get("step_seconds", {}).items():
        lines.append(f"  {name:<10} {secs:>8.1f} s")
    counts = summary.get("row_counts")
    if counts:
        lines.append("  rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    for name, path in summary.get("outputs", {}).items():
        lines.append(f"  {name}: {path}")
    for key, value in summary.get("headline", {}).items():
        lines.append(f"  {key}: " + ", ".join(f"{g} {v:.4f}" for g, v in value.items()))
    return "\n".join(lines)
