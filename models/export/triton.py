"""A merlin-systems Ensemble written as a Triton model repository: workflow -> lookup -> model.

Shared by the DLRM export and the two-tower query tower (models/export/retrieval.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrec.contracts import ENTRY_MODEL
from models.export.inputs import item_id_column, serving_inputs


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

        node = node >> EmbeddingLookup(tables, id_column=item_id_column(wf))
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


def _runtime(backend: str) -> Any:
    from merlin.systems.dag.runtimes.triton import TritonExecutorRuntime

    runtime = TritonExecutorRuntime()
    if backend == "python":
        from merlin.systems.dag.ops.tensorflow import PredictTensorflow

        from models.export.python_backend import PredictTensorflowPython

        runtime.op_table = {**runtime.op_table, PredictTensorflow: PredictTensorflowPython}
    return runtime
