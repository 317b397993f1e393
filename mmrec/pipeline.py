"""The main job: every stage in order on one dataset, resumable, ending with a summary.

Each stage runs as its own process (`python -m mmrec.cli STAGE ...`), exactly as a user would run
it, because stages exchange files only: TensorFlow and PyTorch never share a process, and any
stage can be rerun alone. A journal (`run_state.json`) records finished steps with the arguments
they ran with, so an interrupted run resumes at the first unfinished step, and a step whose
arguments changed runs again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from mmrec.config import (
    STAGE_CONFIGS,
    RunConfig,
    SyntheticConfig,
    TrainConfig,
    content_defaults,
    is_movielens,
)
from mmrec.console import child_stderr
from mmrec.contracts import seed_run_name, train_run_name
from mmrec.errors import MmrecError
from mmrec.io import read_json, write_json_atomic
from mmrec.options import argv_of
from mmrec.paths import DatasetPaths


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]


def _argv(
    stage: str, values: dict[str, Any], cfg: RunConfig, override: dict[str, Any] | None = None
) -> tuple[str, ...]:
    """`mmrec STAGE` with these options, then the run's pass-through options for the stage
    (`override` replaces some of those: the seed of a second seed's training)."""
    cls = STAGE_CONFIGS[stage]
    extra = {**cfg.stage_options.get(stage, {}), **(override or {})}
    return (
        *stage.split(),
        *argv_of(cls, values),
        *argv_of(cls, extra),
        "--data-dir",
        str(cfg.data_dir),
    )


def plan(cfg: RunConfig) -> list[Step]:
    """The ordered steps for this dataset; each is one `mmrec` invocation."""
    synthetic = not is_movielens(cfg.dataset)
    ds = {"dataset": cfg.dataset}
    unknown = set(cfg.stage_options) - {"enrich", "features", "etl", "train"}
    if unknown or ("enrich" in cfg.stage_options and (synthetic or not cfg.source)):
        raise MmrecError(
            "enrich options (--images, --texts, --key, --text-column, --limit) need real "
            "MovieLens and --source"
            if not unknown
            else f"mmrec run passes no options to {sorted(unknown)}"
        )
    steps: list[Step] = []

    # modalities: without posters (real data, no enrich source) only text, from the fallback texts
    modalities = cfg.modalities or (("text", "image") if synthetic or cfg.source else ("text",))
    if set(modalities) - {"text", "image"} or not modalities:
        raise MmrecError(f"--modalities {','.join(modalities)}: give text, image or text,image")
    modalities = tuple(m for m in ("text", "image") if m in modalities)

    # data, then enrich (real MovieLens only: the synthetic data arrives enriched)
    if synthetic:
        syn = cfg.synthetic or SyntheticConfig(data_dir=cfg.data_dir, name=cfg.dataset)
        sizes = {"name": cfg.dataset, "users": syn.users, "movies": syn.movies,
                 "ratings": syn.ratings, "seed": syn.seed}  # fmt: skip
        if "image" not in modalities:
            sizes["posters"] = False  # no image modality: generating posters is wasted time
        steps.append(Step("data", _argv("data synthetic", sizes, cfg)))
    else:
        steps.append(Step("data", _argv("data download", {"variant": cfg.dataset}, cfg)))
        if cfg.source:
            steps.append(Step("enrich", _argv("enrich", {**ds, "source": cfg.source}, cfg)))

    defaults = content_defaults(cfg.dataset)
    features: dict[str, Any] = {
        **ds,
        "modalities": modalities,
        "text_model": cfg.text_model or defaults["text_model"],
    }
    if "image" in modalities:
        features["image_model"] = cfg.image_model or defaults["image_model"]
    random_init = cfg.random_init if cfg.random_init is not None else defaults["random_init"]
    if random_init:
        features["random_init"] = random_init
    if cfg.pca:
        features["pca"] = {m: d for m, d in cfg.pca.items() if m in modalities}
    steps.append(Step("features", _argv("features", features, cfg)))

    # etl
    split = cfg.split or ("cold-items" if synthetic else "random")
    etl_run = f"{split}-{cfg.embeddings}"
    etl = {**ds, "split": split, "embeddings": cfg.embeddings}
    steps.append(Step("etl", _argv("etl", etl, cfg)))

    # train: the ablation (ids only, content, content with each control), then retrieval
    content = ",".join(modalities)
    runs = [
        ("dlrm", "none", "none"),
        ("dlrm", content, "none"),
        ("dlrm", content, "constant"),
        ("dlrm", content, "shuffled"),
        ("two-tower", "none", "none"),
        ("two-tower", content, "none"),
    ]
    first_seed = cfg.stage_options.get("train", {}).get(
        "seed", TrainConfig(dataset=cfg.dataset, data_dir=cfg.data_dir).seed
    )
    for model, mods, control in runs:
        base = train_run_name(etl_run, model, modalities if mods != "none" else (), control)
        for seed in range(first_seed, first_seed + cfg.seeds):
            # the first seed's step keeps its name and argv, so a finished run is reused
            again = seed != first_seed
            train = {**ds, "etl_run": etl_run, "model": model, "modalities": mods,
                     "control": control, "run_name": seed_run_name(base, seed, first_seed)}  # fmt: skip
            name = f"train {model} {mods} {control}" + (f" seed {seed}" if again else "")
            argv = _argv("train", train, cfg, override={"seed": seed} if again else {})
            steps.append(Step(name, argv))
    steps.append(Step("evaluate", _argv("evaluate", {**ds, "etl_run": etl_run}, cfg)))
    steps.append(Step("report", _argv("report", ds, cfg)))
    if cfg.export:
        best = {
            **ds,
            "run": train_run_name(etl_run, "dlrm", modalities, "none"),
            "backend": "python",
        }
        steps.append(Step("export", _argv("export", best, cfg)))
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
        returncode = run_stage([sys.executable, "-m", "mmrec.cli", *argv])
        seconds = round(time.perf_counter() - t0, 2)
        if returncode != 0:
            raise MmrecError(
                f"step {step.name!r} failed (exit {returncode}) after {seconds} s; "
                "fix the cause above and rerun `mmrec run` to resume from this step"
            )
        done[step.name] = {"argv": list(step.argv), "seconds": seconds, "finished_at": time.time()}
        write_json_atomic(state_file, state)
    ordered = {step.name: done[step.name] for step in steps if step.name in done}
    summary = summarize(paths, ordered)
    write_json_atomic(paths.root / "run_summary.json", summary)
    return summary


STOP_GRACE_S = 30.0  # how long a stopped stage may take to exit before it is killed


def run_stage(cmd: list[str]) -> int:
    """Run one stage as a child process that does not outlive this one.

    The child and whatever it starts (the features env, Dask workers) get a session and process
    group of their own, so a terminal's Ctrl-C reaches only us: SIGTERM or SIGINT to `mmrec run`
    is passed on to that group, which gets STOP_GRACE_S to finish (an interrupted stage resumes
    on the next run), then SIGKILL. Then this process ends as interrupted (KeyboardInterrupt:
    the CLI says to rerun to resume).
    """
    # the real stderr, not this command's capture pipe: each stage logs its own output
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=child_stderr())
    stopped: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        stopped.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        if len(stopped) == 1:  # a second signal is only passed on: the cleanup below goes on
            raise KeyboardInterrupt

    handlers = (signal.SIGTERM, signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in handlers} if main else {}
    try:
        return proc.wait()
    except BaseException:
        if not stopped:  # an exception of our own: the stage must not go on without us
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
        proc.wait()
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
