"""The GPU path of the pipeline env (cuDF + dask-cuda ETL) against the CPU path.

Skipped with a reason where no GPU is present (tests/conftest.py). On a GPU host (the Merlin
image): `python -m pytest -m gpu tests/test_gpu.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmrec.config import EtlConfig, SyntheticConfig
from workflows.data.synthetic import generate_synthetic
from workflows.etl.stage import run_etl

pytestmark = pytest.mark.gpu


def _frame(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("*.parquet"))
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return df.sort_values(["userId", "movieId"]).reset_index(drop=True)


def test_etl_on_gpu_equals_cpu(tmp_path: Path) -> None:
    generate_synthetic(
        SyntheticConfig(
            data_dir=tmp_path, users=200, movies=120, ratings=6000, seed=5, posters=False
        )
    )
    outs = {}
    for device in ("cpu", "gpu"):
        summary = run_etl(
            EtlConfig(
                dataset="synthetic",
                data_dir=tmp_path,
                split="cold-items",
                embeddings="none",
                device=device,
                run_name=f"run-{device}",
            )
        )
        outs[device] = Path(summary["path"])
    for part in ("train", "valid"):
        cpu, gpu = _frame(outs["cpu"] / part), _frame(outs["gpu"] / part)
        assert list(cpu.columns) == list(gpu.columns)
        for col in cpu.columns:
            a, b = cpu[col].to_numpy(), gpu[col].to_numpy()
            if a.dtype == object:  # list columns
                assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=False)), col
            else:
                np.testing.assert_array_equal(a, b, err_msg=col)
