"""The CUDA path of feature extraction (mixed precision, channels-last) against the CPU path.

Skipped with a reason where no GPU is present (tests/conftest.py); run on a GPU host with
`.venv-features/bin/python -m pytest -m gpu tests/features`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from feature_builders import config, make_dataset, matrix

from mmrec.paths import DatasetPaths
from workflows.features.extract import extract_features

pytestmark = [pytest.mark.features, pytest.mark.gpu]


def _vectors(data_dir: Path, modality: str) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(DatasetPaths.of(data_dir, "tiny").modality_embeddings(modality))
    return table.column("movieId").to_numpy(), matrix(table)


def test_cuda_embeddings_match_cpu(tmp_path: Path) -> None:
    cpu_dir, gpu_dir = tmp_path / "cpu", tmp_path / "gpu"
    make_dataset(cpu_dir)
    shutil.copytree(cpu_dir, gpu_dir)
    # the real EfficientNet-Lite0 (config's default): trained weights, vectors of a real scale
    extract_features(config(cpu_dir, device="cpu"))
    summary = extract_features(config(gpu_dir, device="cuda"))
    assert "cuda" in str(summary)
    for modality in ("image", "text"):
        ids_cpu, cpu = _vectors(cpu_dir, modality)
        ids_gpu, gpu = _vectors(gpu_dir, modality)
        np.testing.assert_array_equal(ids_cpu, ids_gpu)
        # fp16 autocast: close, not equal; cosine similarity per movie
        cos = (cpu * gpu).sum(1) / (
            np.linalg.norm(cpu, axis=1) * np.linalg.norm(gpu, axis=1) + 1e-12
        )
        assert (
            cos.min() > 0.99
        ), f"{modality}: CPU and CUDA vectors differ (min cosine {cos.min():.4f})"
