"""`mmrec export`: a trained model and its fitted workflow as a Triton model repository.

Serving must see raw ids, not Categorify codes, so the repository runs the same fitted NVTabular
workflow the model was trained behind (labels removed), gathers the pretrained movie vectors from
the ETL's id-aligned matrices, and then calls the model: a merlin-systems Ensemble. DLRM exports
the whole chain; a two-tower model exports its query tower the same way plus every movie's
embedding and a top-k index (models/export/retrieval.py).

Output layout, `<out>/`:
  triton/          the Triton model repository (`executor_model` is the entry point)
  retrieval/       two-tower only: item embeddings (Parquet) and the brute-force index
  export.json      what was exported from where, raw inputs and outputs, timings
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mmrec.config import ExportConfig
from mmrec.contracts import ENTRY_MODEL, EXPORT_SUMMARY, DatasetPaths, EtlRunPaths, TrainRunPaths
from mmrec.done import check_done
from mmrec.errors import MmrecError
from mmrec.io import atomic_dir, read_json, write_json_atomic
from models.export.retrieval import export_two_tower
from models.export.triton import export_dlrm

BACKENDS = ("tensorflow", "python")


def export(cfg: ExportConfig) -> dict[str, Any]:
    """Export the run's model as a Triton repository; a finished export is kept unless force."""
    if cfg.backend not in BACKENDS:
        raise MmrecError(f"--backend must be one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    if cfg.max_batch_size < 1:
        raise MmrecError(f"max_batch_size must be >= 1, got {cfg.max_batch_size}")
    sources = resolve_sources(cfg)
    out = sources["out"]
    wanted = {
        "kind": sources["kind"],
        "backend": cfg.backend,
        "max_batch_size": cfg.max_batch_size,
        "model_dir": str(sources["model_dir"]),
        "etl_dir": str(sources["etl_dir"]),
    }
    # the export's summary holds these fields itself, so older exports compare too
    summary_path = out / EXPORT_SUMMARY
    recorded = read_json(summary_path) if summary_path.is_file() and not cfg.force else {}
    done = check_done(
        summary_path,
        wanted,
        force=cfg.force,
        recorded={k: recorded.get(k) for k in wanted},
        hint=", or choose another --out",
    )
    if done is not None:
        return {**done, "path": str(out), "skipped": True}

    t0 = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with atomic_dir(out) as tmp:
        if sources["kind"] == "two-tower":
            details = export_two_tower(sources, tmp, cfg)
        else:
            details = export_dlrm(sources, tmp / "triton", cfg.backend, cfg.max_batch_size)
        summary = {
            "kind": sources["kind"],
            "backend": cfg.backend,
            "entry_model": ENTRY_MODEL,
            "max_batch_size": cfg.max_batch_size,
            "model_dir": str(sources["model_dir"]),
            "etl_dir": str(sources["etl_dir"]),
            "repository": str(out / "triton"),
            **details,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        write_json_atomic(tmp / EXPORT_SUMMARY, summary)
    return {**summary, "path": str(out), "skipped": False}


def resolve_sources(cfg: ExportConfig) -> dict[str, Any]:
    """Find the model, the ETL run and the output folder; fail naming the missing path."""
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    run_dir = paths.run(cfg.run).root if cfg.run else None
    # what `mmrec train` recorded: the model kind and ETL run (summary.json), and the control and
    # seed its vectors were transformed with (config.json)
    trained: dict[str, Any] = {}
    if run_dir is not None:
        for record in (TrainRunPaths(run_dir).summary, TrainRunPaths(run_dir).config):
            if record.exists():
                trained.update(read_json(record))
    model_dir = Path(cfg.model_dir) if cfg.model_dir else _model_dir_of(run_dir)
    etl_dir = Path(cfg.etl_dir) if cfg.etl_dir else _etl_dir_of(paths, trained, cfg.etl_run)
    workflow = EtlRunPaths(etl_dir).workflow
    for what, path in (("workflow", workflow), ("model", model_dir)):
        if not path.exists():
            raise MmrecError(f"{what} not found: {path}")
    kind = cfg.model if cfg.model != "auto" else _kind_of(model_dir, trained)
    if kind not in ("dlrm", "two-tower"):
        raise MmrecError(f"model kind must be dlrm or two-tower, got {kind!r} ({model_dir})")
    name = cfg.run or model_dir.name
    out = Path(cfg.out) if cfg.out else paths.export / name
    return {
        "kind": kind,
        "model_dir": model_dir,
        "etl_dir": etl_dir,
        "out": out,
        "run_dir": run_dir,
        # an ablation run was trained on a transformed matrix: serve it the same one
        "control": trained.get("control", "none"),
        "seed": int(trained.get("seed", 0)),
        "train_config": trained,
    }


def _model_dir_of(run_dir: Path | None) -> Path:
    if run_dir is None:
        raise MmrecError("give a training run (--run) or a model directory (--model-dir)")
    for candidate in (TrainRunPaths(run_dir).model, run_dir):
        if (candidate / "saved_model.pb").exists():
            return candidate
    raise MmrecError(f"no saved model in {run_dir} (looked for model/saved_model.pb)")


def _etl_dir_of(paths: DatasetPaths, trained: dict[str, Any], etl_run: str | None) -> Path:
    if etl_run or trained.get("etl_run"):
        return paths.etl_run(etl_run or trained["etl_run"]).root
    runs = sorted(p for p in paths.etl.glob("*") if EtlRunPaths(p).workflow.exists())
    if len(runs) == 1:
        return runs[0]
    found = ", ".join(p.name for p in runs) or "none"
    raise MmrecError(f"say which ETL run to use (--etl-run); found in {paths.etl}: {found}")


def _kind_of(model_dir: Path, trained: dict[str, Any]) -> str:
    if trained.get("model") in ("dlrm", "two-tower"):
        return trained["model"]
    return "two-tower" if TrainRunPaths(model_dir.parent).query_tower.exists() else "dlrm"
