"""In-process scoring with the same pieces the exported ensemble runs: the yardstick for serving.

merlin-systems' Ensemble.transform only works before export (export swaps its operators), so the
reference is built from the parts directly: the fitted workflow (labels removed), the id-aligned
lookup matrices, and the Keras model called on the resulting tensors. Tests compare served scores
with it; the serving benchmark times it beside Triton.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from models.export.inputs import item_id_column, model_inputs, serving_inputs


class InProcessScorer:
    """Raw rows -> scores without Triton, from an ETL folder and a SavedModel folder."""

    def __init__(
        self,
        etl_dir: str | os.PathLike[str],
        model_dir: str | os.PathLike[str],
        control: str = "none",
        seed: int = 0,
    ) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import merlin.models.tf  # noqa: F401  (custom layers for load_model)
        import tensorflow as tf
        from merlin.systems.dag.ops.tensorflow import PredictTensorflow

        self._tf = tf
        self.model = tf.keras.models.load_model(str(model_dir), compile=False)
        signature = PredictTensorflow(str(model_dir))
        self.input_schema = signature.input_schema
        self.output_name = signature.output_schema.column_names[0]
        self.workflow, self.tables = serving_inputs(
            Path(etl_dir), self.input_schema, control=control, seed=seed
        )
        self.id_column = item_id_column(self.workflow)

    @property
    def raw_columns(self) -> list[str]:
        return list(self.workflow.input_schema.column_names)

    def features(self, rows: Any) -> dict[str, np.ndarray]:
        """The model's input tensors for raw rows (a pandas DataFrame)."""
        from merlin.io import Dataset

        raw = rows[self.raw_columns].reset_index(drop=True)
        encoded = self.workflow.transform(Dataset(raw, cpu=True)).to_ddf().compute()
        return model_inputs(
            encoded.reset_index(drop=True),
            self.input_schema,
            self.tables,
            self.id_column,
            offsets_dtypes=self._offsets_dtypes(),
        )

    def _offsets_dtypes(self) -> dict[str, Any]:
        """Offsets dtypes as the SavedModel was traced with (int32 or int64, by Merlin version)."""
        spec = self.model.save_spec()
        if not spec:
            return {}
        inputs = spec[0][0] if isinstance(spec[0], (list, tuple)) else spec[0]
        return {
            name: inputs[name].dtype.as_numpy_dtype for name in inputs if name.endswith("__offsets")
        }

    def predict(self, rows: Any) -> np.ndarray:
        """The model's output per row: [n, 1] scores, or [n, d] vectors for a query tower."""
        feed = {k: self._tf.convert_to_tensor(v) for k, v in self.features(rows).items()}
        out = self.model(feed, training=False)
        if isinstance(out, dict):
            out = out[self.output_name]
        out = np.asarray(out)
        return out.reshape(len(out), -1)

    def score(self, rows: Any) -> np.ndarray:
        """One float score per row, as ScoringClient.score returns it from Triton."""
        return self.predict(rows).reshape(-1)
