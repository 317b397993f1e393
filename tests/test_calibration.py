"""Platt scaling of the DLRM's logit: the fit, the held-out slice, the layer that carries it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from models.calibration import fit_platt, held_out, logit_of
from models.metrics import auc, logloss


def _loss(z: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    t = a * z + b
    return float(np.mean(np.logaddexp(0.0, t) - y * t))


@pytest.mark.parametrize("a,b", [(0.4, -0.5), (1.0, 0.0), (2.5, 1.2)])
def test_platt_fit_is_the_likelihood_optimum(a: float, b: float) -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(size=20_000) * 3
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(a * z + b)))).astype(float)
    got = fit_platt(z, y)
    ref = minimize(lambda w: _loss(z, y, *w), [1.0, 0.0], method="Nelder-Mead",
                   options={"xatol": 1e-9, "fatol": 1e-13}).x  # fmt: skip
    assert got == pytest.approx(tuple(ref), abs=1e-4)
    assert _loss(z, y, *got) <= _loss(z, y, *ref) + 1e-12
    assert got == pytest.approx((a, b), abs=0.08)  # and near the truth at this size


def test_platt_keeps_the_order_and_lowers_the_loss_of_an_overconfident_score() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=5_000)
    y = (rng.random(truth.size) < 1 / (1 + np.exp(-truth))).astype(float)
    z = 4 * truth + 1  # the right order, far too confident, shifted
    a, b = fit_platt(z, y)
    before = 1 / (1 + np.exp(-z))
    after = 1 / (1 + np.exp(-(a * z + b)))
    assert a > 0 and auc(y, after) == auc(y, before)
    assert logloss(y, after) < logloss(y, before) - 0.1


def test_platt_identity_when_it_cannot_or_must_not_fit() -> None:
    z = np.linspace(-2, 2, 50)
    assert fit_platt(z, np.ones(50)) == (1.0, 0.0)  # one class: nothing to fit
    assert fit_platt(z[:0], z[:0]) == (1.0, 0.0)
    assert fit_platt(z, (z < 0).astype(float)) == (1.0, 0.0)  # a <= 0 would reverse the order


def test_logit_inverts_float32_sigmoid() -> None:
    z = np.linspace(-9, 9, 101)  # beyond, float32 holds too few digits near 0 and 1
    p = (1 / (1 + np.exp(-z))).astype(np.float32)
    assert logit_of(p) == pytest.approx(z, abs=2e-3)
    assert np.isfinite(logit_of(np.array([0.0, 1.0], dtype=np.float32))).all()


def test_held_out_slice_is_seeded_by_pair_and_near_its_share() -> None:
    users = np.repeat(np.arange(400), 250)
    items = np.tile(np.arange(250), 400)
    mask = held_out(users, items, 0.05, 42)
    assert abs(mask.mean() - 0.05) < 0.004
    order = np.random.default_rng(0).permutation(users.size)  # any row order, any file layout
    assert (held_out(users[order], items[order], 0.05, 42) == mask[order]).all()
    other = held_out(users, items, 0.05, 43)
    assert abs((mask & other).mean() - 0.05**2) < 0.002  # another seed, an independent slice
    assert not held_out(users, items, 0.0, 42).any()
    assert held_out(users, items, 0.2, 42)[mask].all()  # a larger share contains the smaller


def test_calibrated_layer_is_dense_sigmoid_until_set_and_survives_a_savedmodel(
    tmp_path: Path,
) -> None:
    import tensorflow as tf

    from models.layers import CalibratedSigmoid

    x = np.random.default_rng(3).normal(size=(64, 5)).astype(np.float32)
    inputs = tf.keras.Input(shape=(5,))
    layer = CalibratedSigmoid()
    model = tf.keras.Model(inputs, layer(inputs))
    plain = tf.keras.layers.Dense(1, activation="sigmoid")
    plain.build((None, 5))
    plain.set_weights(layer.dense.get_weights())
    assert np.array_equal(model(x).numpy(), plain(x).numpy())  # bit for bit while scale=1, shift=0
    assert [w.name for w in model.trainable_weights] == [w.name for w in layer.dense.weights]

    layer.scale.assign(0.5)
    layer.shift.assign(-0.25)
    logits = x @ layer.dense.kernel.numpy() + layer.dense.bias.numpy()
    want = 1 / (1 + np.exp(-(0.5 * logits - 0.25)))
    assert model(x).numpy() == pytest.approx(want, abs=1e-6)
    model.save(tmp_path / "m")
    again = tf.keras.models.load_model(tmp_path / "m")
    assert again(x).numpy() == pytest.approx(want, abs=1e-6)
