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

import copy
import os
import time
from pathlib import Path
from typing import Any

from mmrec.config import ExportConfig
from mmrec.errors import MmrecError
from mmrec.io import atomic_dir, read_json, write_json_atomic
from mmrec.paths import DatasetPaths

ENTRY_MODEL = "executor_model"
BACKENDS = ("tensorflow", "python")
SUMMARY = "export.json"


def export(cfg: ExportConfig) -> dict[str, Any]:
    """Export the run's model as a Triton repository; a finished export is kept unless force."""
    if cfg.backend not in BACKENDS:
        raise MmrecError(f"--backend must be one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    if cfg.max_batch_size < 1:
        raise MmrecError(f"max_batch_size must be >= 1, got {cfg.max_batch_size}")
    sources = resolve_sources(cfg)
    out = sources["out"]
    summary_path = out / SUMMARY
    if summary_path.exists() and not cfg.force:
        summary = read_json(summary_path)
        if summary.get("backend") == cfg.backend:
            return {**summary, "path": str(out), "skipped": True}

    t0 = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with atomic_dir(out) as tmp:
        if sources["kind"] == "two-tower":
            from models.export.retrieval import export_two_tower

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
        write_json_atomic(tmp / SUMMARY, summary)
    return {**summary, "path": str(out), "skipped": False}


def resolve_sources(cfg: ExportConfig) -> dict[str, Any]:
    """Find the model, the ETL run and the output folder; fail naming the missing path."""
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    run_dir = paths.runs / cfg.run if cfg.run else None
    # what `mmrec train` recorded: the model kind and ETL run (summary.json), and the control and
    # seed its vectors were transformed with (config.json)
    trained: dict[str, Any] = {}
    for name in ("summary.json", "config.json"):
        if run_dir is not None and (run_dir / name).exists():
            trained.update(read_json(run_dir / name))
    model_dir = Path(cfg.model_dir) if cfg.model_dir else _model_dir_of(run_dir)
    etl_dir = Path(cfg.etl_dir) if cfg.etl_dir else _etl_dir_of(paths, trained, cfg.etl_run)
    for what, path in (("workflow", etl_dir / "workflow"), ("model", model_dir)):
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
    for candidate in (run_dir / "model", run_dir):
        if (candidate / "saved_model.pb").exists():
            return candidate
    raise MmrecError(f"no saved model in {run_dir} (looked for model/saved_model.pb)")


def _etl_dir_of(paths: DatasetPaths, trained: dict[str, Any], etl_run: str | None) -> Path:
    if etl_run or trained.get("etl_run"):
        return paths.etl / (etl_run or trained["etl_run"])
    runs = sorted(p for p in paths.etl.glob("*") if (p / "workflow").exists())
    if len(runs) == 1:
        return runs[0]
    found = ", ".join(p.name for p in runs) or "none"
    raise MmrecError(f"say which ETL run to use (--etl-run); found in {paths.etl}: {found}")


def _kind_of(model_dir: Path, trained: dict[str, Any]) -> str:
    if trained.get("model") in ("dlrm", "two-tower"):
        return trained["model"]
    return "two-tower" if (model_dir.parent / "query_tower").exists() else "dlrm"


def export_dlrm(
    sources: dict[str, Any], repository: Path, backend: str, max_batch_size: int
) -> dict[str, Any]:
    """Workflow -> lookup -> model as one merlin-systems Ensemble written to `repository`."""
    import merlin.models.tf  # noqa: F401  (registers the custom layers the SavedModel needs)
    from merlin.systems.dag.ops.tensorflow import PredictTensorflow

    predict = PredictTensorflow(str(sources["model_dir"]))
    return export_ensemble(predict, sources, repository, backend, max_batch_size)


def export_ensemble(
    predict: Any, sources: dict[str, Any], repository: Path, backend: str, max_batch_size: int
) -> dict[str, Any]:
    """Shared by DLRM and the query tower: prune the workflow to what `predict` needs, chain."""
    from merlin.systems.dag import Ensemble
    from merlin.systems.dag.ops.workflow import TransformWorkflow

    from models.export.guard_op import BatchGuard

    wf, tables = serving_inputs(
        Path(sources["etl_dir"]),
        predict.input_schema,
        control=sources.get("control", "none"),
        seed=sources.get("seed", 0),
    )

    node = wf.input_schema.column_names >> BatchGuard(max_batch_size) >> TransformWorkflow(wf)
    if tables:
        from models.export.lookup_op import EmbeddingLookup

        node = node >> EmbeddingLookup(tables, id_column=_item_id_column(wf))
    node = node >> predict
    ensemble = Ensemble(node, wf.input_schema)

    repository.mkdir(parents=True, exist_ok=True)
    runtime = _runtime(backend)
    ensemble.export(str(repository), runtime=runtime, name=ENTRY_MODEL)
    return {
        "inputs": {
            c.name: {"dtype": str(c.dtype.to_numpy), "list": bool(c.is_list)}
            for c in wf.input_schema
        },
        "outputs": list(ensemble.output_schema.column_names),
        "score": next(iter(ensemble.output_schema.column_names)),
        "control": sources.get("control", "none"),
        "lookup": {name: list(t.shape) for name, t in tables.items()},
        "models": sorted(p.name for p in repository.iterdir() if p.is_dir()),
    }


def serving_inputs(
    etl_dir: Path, input_schema: Any, control: str = "none", seed: int = 0
) -> tuple[Any, dict[str, Any]]:
    """What feeds a saved model at serving time: the fitted workflow pruned to the model inputs
    it produces, and the id-aligned lookup matrices for the rest (the pretrained vectors)."""
    import nvtabular as nvt

    wf = nvt.Workflow.load(str(etl_dir / "workflow"))
    needed = list(input_schema.column_names)
    features = [c for c in needed if c in wf.output_schema.column_names]
    if not features:
        raise MmrecError(
            f"the model's inputs {needed} share no column with the workflow's outputs "
            f"{wf.output_schema.column_names} ({etl_dir / 'workflow'})"
        )
    tables = lookup_tables(
        etl_dir,
        input_schema.select_by_name([c for c in needed if c not in features]),
        control=control,
        seed=seed,
    )
    return prune_workflow(wf, features), tables


def prune_workflow(wf: Any, keep: list[str]) -> Any:
    """Drop every raw input not needed for `keep` (labels, item columns for a query tower)."""
    for col in list(wf.input_schema.column_names):
        trial = copy.deepcopy(wf)
        trial.remove_inputs([col])
        if set(keep) <= set(trial.output_schema.column_names) and len(trial.input_schema):
            wf = trial
    return wf


def lookup_tables(
    etl_dir: Path, schema: Any, control: str = "none", seed: int = 0
) -> dict[str, Any]:
    """Id-aligned matrices for the model inputs the workflow does not produce, in their dtype.

    `control` (constant | shuffled) reproduces the ablation matrix a run was trained on.
    """
    import numpy as np

    tables = {}
    for spec in schema:
        col = spec.name
        if col.endswith("_embedding"):
            path = etl_dir / "embeddings" / f"{col[: -len('_embedding')]}.npy"
        elif col.startswith("has_"):
            path = etl_dir / "embeddings" / f"{col}.npy"
        else:
            path = None
        if path is None or not path.exists():
            where = f" (looked for {path})" if path else ""
            raise MmrecError(
                f"model input {col!r} is neither a workflow output nor a lookup matrix{where}"
            )
        table = np.load(path)
        if table.ndim not in (1, 2) or table.shape[0] < 3:
            raise MmrecError(f"{path}: expected [cardinality, dim] rows, got shape {table.shape}")
        if control != "none" and col.endswith("_embedding"):
            from models.inputs import control_matrix

            has_path = path.with_name(f"has_{path.stem}.npy")
            has = np.load(has_path) if has_path.exists() else np.abs(table).sum(1) > 0
            table = control_matrix(table, has, control, seed)
        table = table.astype(spec.dtype.to_numpy, copy=False)
        inner = [d.max for d in spec.shape.dims[1:]] if spec.shape.dims else []
        if table.ndim == 1 and inner == [1]:
            table = table.reshape(-1, 1)  # a flag the model reads as [batch, 1]
        tables[col] = table
    return tables


def _item_id_column(wf: Any) -> str:
    from merlin.schema import Tags

    ids = wf.output_schema.select_by_tag(Tags.ITEM_ID).column_names
    return ids[0] if ids else "movieId"


def _runtime(backend: str) -> Any:
    from merlin.systems.dag.runtimes.triton import TritonExecutorRuntime

    runtime = TritonExecutorRuntime()
    if backend == "python":
        from merlin.systems.dag.ops.tensorflow import PredictTensorflow

        from models.export.python_backend import PredictTensorflowPython

        runtime.op_table = {**runtime.op_table, PredictTensorflow: PredictTensorflowPython}
    return runtime
