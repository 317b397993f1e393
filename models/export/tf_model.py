"""Triton python-backend model: a TensorFlow SavedModel called through its serving signature.

Copied as `model.py` next to `model.savedmodel/` by PredictTensorflowPython. It runs inside
Triton's python stub, so it imports only TensorFlow, numpy and the backend utilities.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        config = json.loads(args["model_config"])
        repo = Path(args["model_repository"])
        if repo.suffix == ".py":  # some Triton versions pass the model.py path
            repo = repo.parent.parent
        path = repo / str(args["model_version"]) / "model.savedmodel"
        signature = config.get("parameters", {}).get("TF_SIGNATURE_DEF", {})
        self._tf = tf
        self._model = tf.saved_model.load(str(path))
        self._fn = self._model.signatures[signature.get("string_value", "serving_default")]
        self._inputs = [i["name"] for i in config["input"]]
        # merlin declares list offsets as INT32 whatever the graph takes: cast to the signature.
        specs = self._fn.structured_input_signature[1]
        self._dtypes = {name: specs[name].dtype for name in self._inputs if name in specs}
        self._outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            try:
                feed = {}
                for name in self._inputs:
                    tensor = pb_utils.get_input_tensor_by_name(request, name)
                    if tensor is None:
                        raise ValueError(f"missing input {name!r}")
                    value = self._tf.convert_to_tensor(tensor.as_numpy())
                    dtype = self._dtypes.get(name)
                    feed[name] = value if dtype is None else self._tf.cast(value, dtype)
                result = self._fn(**feed)
                outputs = [pb_utils.Tensor(n, np.asarray(result[n].numpy())) for n in self._outputs]
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            except Exception as exc:  # an error response, never a dead model
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(str(exc))
                    )
                )
        return responses
