"""Serve the SavedModel from Triton's python backend, for builds that have no TensorFlow backend.

merlin-systems exports the model for `platform: tensorflow_savedmodel`; the tritonserver bundled
with nvidia-pytriton has only the python backend. This operator writes the same SavedModel with
the same inputs and outputs, but as a python-backend model (`tf_model.py` as its model.py) that
loads it with TensorFlow inside the stub. The executor calls it by name exactly as it would
call the TensorFlow-backend model, so the rest of the ensemble does not change.
"""

from __future__ import annotations

import pathlib
import shutil

import tritonclient.grpc.model_config_pb2 as model_config
from google.protobuf import text_format
from merlin.schema import Schema
from merlin.systems.dag.ops import compute_dims
from merlin.systems.dag.runtimes.triton.ops.operator import add_model_param
from merlin.systems.dag.runtimes.triton.ops.tensorflow import PredictTensorflowTriton

MODEL_TEMPLATE = pathlib.Path(__file__).with_name("tf_model.py")


class PredictTensorflowPython(PredictTensorflowTriton):
    """PredictTensorflowTriton whose exported model runs on the python backend."""

    def export(
        self,
        path: str,
        input_schema: Schema,
        output_schema: Schema,
        params: dict | None = None,
        node_id: int | None = None,
        version: int = 1,
    ) -> model_config.ModelConfig:
        node_name = f"{node_id}_{self.export_name}" if node_id is not None else self.export_name
        node_dir = pathlib.Path(path) / node_name
        version_dir = node_dir / str(version)
        version_dir.mkdir(parents=True, exist_ok=True)
        saved = version_dir / "model.savedmodel"
        if self.path:
            shutil.copytree(str(self.path), saved, dirs_exist_ok=True)
        else:
            self.model.save(saved, include_optimizer=False)
        shutil.copyfile(MODEL_TEMPLATE, version_dir / "model.py")
        self.set_tf_model_name(node_name)

        config = model_config.ModelConfig(
            name=node_name,
            backend="python",
            instance_group=[
                model_config.ModelInstanceGroup(kind=model_config.ModelInstanceGroup.Kind.KIND_CPU)
            ],
        )
        config.parameters["TF_SIGNATURE_DEF"].string_value = "serving_default"
        for col in self.input_schema.column_schemas.values():
            add_model_param(config.input, model_config.ModelInput, col, compute_dims(col))
        for col in self.output_schema.column_schemas.values():
            add_model_param(config.output, model_config.ModelOutput, col, compute_dims(col))
        with open(node_dir / "config.pbtxt", "w", encoding="utf-8") as f:
            text_format.PrintMessage(config, f)
        return config
