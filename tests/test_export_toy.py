"""The toy ETL + training output (models/toy.py) keeps the contract the export tests rely on."""

from __future__ import annotations

import numpy as np
import pytest

from models.toy import DATASET, DIM, DLRM_RUN, ETL_RUN, TT_RUN, toy_dataset


@pytest.mark.slow
def test_toy_stage_outputs_follow_the_contract() -> None:
    root = toy_dataset() / DATASET
    etl = root / "etl" / ETL_RUN
    emb = np.load(etl / "embeddings" / "text.npy")
    has = np.load(etl / "embeddings" / "has_text.npy")
    assert emb.dtype == np.float32 and emb.shape[1] == DIM
    assert emb.shape[0] == has.shape[0] >= 53  # 50 rated movies + 3 reserved ids
    assert not emb[:3].any() and not has[:3].any()
    assert (root / "runs" / DLRM_RUN / "model" / "saved_model.pb").exists()
    assert (root / "runs" / TT_RUN / "model" / "saved_model.pb").exists()
