"""Small Keras layers the models need beside Merlin's blocks (registered, so SavedModels reload)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="mmrec")
class Standardize(tf.keras.layers.Layer):
    """(x - mean) / std with fixed per-dimension statistics carried in the model's config."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self._mean = tf.constant(self.mean, dtype=tf.float32)
        self._inv_std = tf.constant([1.0 / v for v in self.std], dtype=tf.float32)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return (tf.cast(inputs, tf.float32) - self._mean) * self._inv_std

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def pretrained_branches(
    emb_schema: Any,
    stats: dict[str, tuple[list, list]],
    output_dim: int,
    *,
    input_dropout: float = 0.5,
    kernel_l2: float = 1e-2,
) -> Any:
    """Like mm.PretrainedEmbeddings(output_dims=d), with each vector standardised first.

    The projection is regularised (L2 on its kernel, dropout on its input): a free linear map
    from a few hundred dimensions can give every training movie its own vector, i.e. memorise
    ids instead of learning what content predicts, which is useless for cold movies.
    """
    import merlin.models.tf as mm

    branches = {}
    for col in emb_schema:
        layers: list[Any] = []
        if col.name in stats:
            mean, std = stats[col.name]
            layers.append(Standardize(mean, std))
        if input_dropout > 0:
            layers.append(tf.keras.layers.Dropout(input_dropout))
        layers.append(
            mm.MLPBlock(
                [output_dim],
                activation=None,
                kernel_regularizer=tf.keras.regularizers.L2(kernel_l2) if kernel_l2 else None,
            )
        )
        branches[col.name] = mm.SequentialBlock(layers)
    return mm.ParallelBlock(branches, schema=emb_schema, name="pretrained_embeddings")


@tf.keras.utils.register_keras_serializable(package="mmrec")
class CalibratedSigmoid(tf.keras.layers.Layer):
    """Dense(1) then sigmoid(scale * logit + shift): the DLRM's output layer.

    `scale` and `shift` are not trained by gradient descent: they stay 1 and 0 while the model
    fits (so the layer is exactly Dense(1, sigmoid)) and are then set by Platt scaling on rows
    held out of training (models/calibration.py). A monotone map of the logit leaves every
    AUC as it was and fixes the overconfidence a long-trained model shows on new rows; it is
    part of the SavedModel, so evaluate, export and Triton serve calibrated probabilities.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = tf.keras.layers.Dense(1)

    def build(self, input_shape: Any) -> None:
        self.dense.build(input_shape)
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=False)
        self.shift = self.add_weight(name="shift", shape=(), initializer="zeros", trainable=False)
        super().build(input_shape)

    def logit(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.dense(inputs) * self.scale + self.shift

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(self.logit(inputs))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.dense.compute_output_shape(input_shape)


def calibrated_output(model: Any) -> CalibratedSigmoid:
    """The model's one CalibratedSigmoid (a DLRM built by models/dlrm.py, or its SavedModel)."""
    # Keras' own walk over nested layers (tf.Module.submodules trips over Merlin's attributes)
    found = [
        m for m in model._flatten_layers(include_self=False) if isinstance(m, CalibratedSigmoid)
    ]
    if len(found) != 1:
        raise ValueError(f"expected one CalibratedSigmoid output layer, found {len(found)}")
    return found[0]
