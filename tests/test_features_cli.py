"""`mmrec features` from the pipeline env (no torch) and the feature store builder (numpy only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmrec import cli, envs
from mmrec.config import FeaturesConfig
from mmrec.errors import MmrecError
from mmrec.paths import DatasetPaths
from workflows.features.store import build_feature_store, pca, vectors_to_array

REPO = Path(__file__).resolve().parents[1]
FEATURES_PYTHON = REPO / ".venv-features" / "bin" / "python"
MOVIE_IDS = [10, 20, 30, 40, 50, 60]


def write_movies(root: Path, ids: list[int] = MOVIE_IDS) -> None:
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "movieId": pa.array(ids, pa.int32()),
                "title": [f"Movie {i}" for i in ids],
                "year": pa.array([1990 + i % 30 for i in ids], pa.int16()),
                "genres": pa.array([["Drama"]] * len(ids), pa.list_(pa.string())),
            }
        ),
        root / "movies.parquet",
    )


def write_features(root: Path, modality: str, ids: list[int], vectors: np.ndarray) -> None:
    table = pa.table(
        {"movieId": pa.array(ids, pa.int32()), "embedding": vectors_to_array(vectors)}
    ).replace_schema_metadata({"mmrec": json.dumps({"model": f"{modality}-model", "dim": 8})})
    (root / "features").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "features" / f"{modality}.parquet")


def store_matrix(table: pa.Table, column: str) -> np.ndarray:
    col = table.column(column).combine_chunks()
    return col.flatten().to_numpy().reshape(len(table), col.type.list_size)


@pytest.fixture()
def featured(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    root = tmp_path / "ds"
    write_movies(root)
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 8)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)
    text = rng.normal(size=(6, 5)).astype(np.float32)
    write_features(root, "image", [60, 10, 30, 40], image)  # unsorted on purpose
    write_features(root, "text", MOVIE_IDS, text)
    return tmp_path, image, text


def test_pipeline_env_imports_no_torch() -> None:
    code = (
        "import sys, mmrec.cli, mmrec.envs, mmrec.commands.features, workflows.features.store, "
        "workflows.features.fallback, workflows.features.shards; mmrec.cli.build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_store_flags_zeros_order_and_metadata(featured) -> None:
    data_dir, image, text = featured
    summary = build_feature_store(FeaturesConfig(dataset="ds", data_dir=data_dir))
    table = pq.read_table(DatasetPaths.of(data_dir, "ds").feature_store)
    assert table.schema.names == [  # the contracts' modality order: text, then image
        "movieId",
        "text_embedding",
        "has_text",
        "image_embedding",
        "has_image",
    ]
    assert table.schema.field("movieId").type == pa.int32()
    assert table.schema.field("image_embedding").type == pa.list_(pa.float32(), 8)
    assert table.schema.field("has_image").type == pa.int8()
    assert table.column("movieId").to_pylist() == MOVIE_IDS
    assert table.column("has_image").to_pylist() == [1, 0, 1, 1, 0, 1]
    got = store_matrix(table, "image_embedding")
    assert np.array_equal(got[[5, 0, 2, 3]], image)
    assert not got[[1, 4]].any()
    assert np.array_equal(store_matrix(table, "text_embedding"), text)
    meta = json.loads(table.schema.metadata[b"mmrec"])
    assert meta["modalities"]["image"]["model"] == "image-model"
    assert meta["modalities"]["image"]["present"] == 4 and "pca" not in meta["modalities"]["image"]
    assert summary["image"] == {"output_dim": 8, "present": 4, "missing": 2}
    again = build_feature_store(FeaturesConfig(dataset="ds", data_dir=data_dir))
    assert again["skipped"]


def test_store_pca_fits_present_rows_only(featured) -> None:
    data_dir, image, _ = featured
    cfg = FeaturesConfig(dataset="ds", data_dir=data_dir, pca={"image": 3})
    summary = build_feature_store(cfg)
    table = pq.read_table(DatasetPaths.of(data_dir, "ds").feature_store)
    reduced = store_matrix(table, "image_embedding")
    assert reduced.shape == (6, 3) and reduced.dtype == np.float32
    assert not reduced[[1, 4]].any()  # missing rows stay zeros, not the projected mean
    present = reduced[[5, 0, 2, 3]]
    # the same as a plain SVD of the centred present rows, up to each axis' sign
    centred = image.astype(np.float64) - image.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(np.abs(present), np.abs(u[:, :3] * s[:3]), atol=1e-4)
    meta = json.loads(table.schema.metadata[b"mmrec"])["modalities"]["image"]["pca"]
    ratio = (s**2 / (s**2).sum())[:3]
    assert np.allclose(meta["explained_variance_ratio"], ratio, atol=1e-5)
    assert meta["dim"] == 3 and meta["from_dim"] == 8 and meta["fitted_rows"] == 4
    assert summary["image"]["explained_variance"] == pytest.approx(ratio.sum(), abs=1e-5)
    # deterministic sign: each axis' largest loading is positive, so a flipped input gives the same
    again, _ = pca(image, 3)
    assert np.array_equal(again, present)


def test_pca_sign_rule_is_independent_of_the_svd_sign() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    a, info = pca(x, 4)
    b, _ = pca(x[::-1].copy(), 4)  # a different row order can flip LAPACK's signs
    assert np.allclose(a[::-1], b, atol=1e-4)
    assert info["explained_variance_ratio"] == sorted(info["explained_variance_ratio"])[::-1]
    with pytest.raises(MmrecError, match="PCA to 7"):
        pca(x[:6], 7)


def test_store_bad_inputs_are_clear_errors(featured) -> None:
    data_dir, image, _ = featured
    root = data_dir / "ds"
    with pytest.raises(MmrecError, match="not among the modalities"):
        build_feature_store(FeaturesConfig(dataset="ds", data_dir=data_dir, pca={"audio": 2}))
    with pytest.raises(MmrecError, match=r"PCA to 9 dimensions"):
        build_feature_store(FeaturesConfig(dataset="ds", data_dir=data_dir, pca={"image": 9}))
    write_features(root, "image", [60, 10, 30, 99], image)
    with pytest.raises(MmrecError, match=r"image.parquet: movieId 99 is not in"):
        build_feature_store(FeaturesConfig(dataset="ds", data_dir=data_dir))
    (root / "features" / "image.parquet").unlink()
    (root / "features" / "text.parquet").unlink()
    with pytest.raises(MmrecError, match=r"text.parquet not found: run `mmrec features"):
        build_feature_store(FeaturesConfig(dataset="ds", data_dir=data_dir, modalities=("text",)))


def test_store_keeps_modalities_extracted_earlier(featured) -> None:
    data_dir, _, text = featured
    build_feature_store(FeaturesConfig(dataset="ds", data_dir=data_dir, modalities=("text",)))
    table = pq.read_table(DatasetPaths.of(data_dir, "ds").feature_store)
    assert "has_image" in table.column_names and "has_text" in table.column_names
    assert np.array_equal(store_matrix(table, "text_embedding"), text)


def test_store_only_cli_runs_here(featured, capsys) -> None:
    data_dir, _, _ = featured
    argv = ["features", "--dataset", "ds", "--data-dir", str(data_dir), "--store-only"]
    assert cli.main([*argv, "--pca", "image=2,text=4"]) == 0
    out = capsys.readouterr().out
    assert "feature store: 6 movies" in out and "image dim 2 present 4/6" in out
    assert cli.main([*argv, "--pca", "image"]) == 2
    assert "expected MODALITY=DIM" in capsys.readouterr().err


def test_missing_features_env_says_make_setup(tmp_path, monkeypatch, capsys) -> None:
    if envs.has_torch():
        pytest.skip("this interpreter has torch; the re-exec only happens without it")
    monkeypatch.setenv(envs.FEATURES_PYTHON_ENV, str(tmp_path / "nope" / "python"))
    write_movies(tmp_path / "ds")
    rc = cli.main(["features", "--dataset", "ds", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "make setup" in err and str(tmp_path / "nope" / "python") in err
    with pytest.raises(MmrecError, match="make setup"):
        envs.features_python()


@pytest.mark.skipif(not FEATURES_PYTHON.exists(), reason=f"{FEATURES_PYTHON} not created")
def test_cli_reruns_itself_in_the_features_env(tmp_path: Path) -> None:
    """`.venv/bin/mmrec features` (no torch here) runs the stage with the features env's Python."""
    root = tmp_path / "ds"
    write_movies(root, [1, 2, 3])
    (root / "posters").mkdir()
    Image.new("RGBA", (40, 60), (200, 10, 10, 128)).save(root / "posters" / "1.png")
    (root / "posters" / "2.jpg").write_bytes(b"corrupt")
    pq.write_table(
        pa.table(
            {"movieId": pa.array([1], pa.int32()), "text": ["A red film."], "source": ["test"]}
        ),
        root / "synopses.parquet",
    )
    script = Path(sys.executable).parent / "mmrec"  # this (pipeline) env's console script
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mmrec.cli"]
    cmd += ["features", "--dataset", "ds", "--data-dir", str(tmp_path)]
    cmd += ["--image-model", "efficientnet-lite0", "--num-workers", "0"]  # real, packaged weights
    cmd += ["--text-model", "minilm", "--pca", "text=2"]
    env = {k: v for k, v in os.environ.items() if k != envs.FEATURES_PYTHON_ENV}
    env["MMREC_NO_PROGRESS"] = "1"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "image: 1 rows, dim 1280" in done.stdout and "posters failed: 1" in done.stdout
    assert "fallback count: 2" in done.stdout and "items/s" in done.stdout
    store = pq.read_table(root / "feature_store.parquet")
    assert store.column("has_image").to_pylist() == [1, 0, 0]
    assert store.schema.field("text_embedding").type == pa.list_(pa.float32(), 2)
    meta = json.loads(store.schema.metadata[b"mmrec"])
    weights = meta["modalities"]["image"]["weights"]
    assert len(weights) == 64 and int(weights, 16) >= 0  # the sha256 of the packaged state dict
    assert (tmp_path / "ds" / "logs" / "features.log").read_text().count("image: 1 rows") == 1


@pytest.mark.skipif(not FEATURES_PYTHON.exists(), reason=f"{FEATURES_PYTHON} not created")
def test_features_on_synthetic_data_needs_no_flags(tmp_path: Path) -> None:
    """`mmrec features --dataset synthetic` alone works offline, with the models `mmrec run` uses."""
    env = {k: v for k, v in os.environ.items() if k != envs.FEATURES_PYTHON_ENV}
    env.update(MMREC_NO_PROGRESS="1", HF_HUB_OFFLINE="1")
    mmrec = [sys.executable, "-m", "mmrec.cli"]
    data = ["data", "synthetic", "--users", "30", "--movies", "20", "--ratings", "300"]
    subprocess.run([*mmrec, *data, "--data-dir", str(tmp_path)], check=True, env=env)
    cmd = [*mmrec, "features", "--dataset", "synthetic", "--data-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads(
        pq.read_schema(tmp_path / "synthetic" / "feature_store.parquet").metadata[b"mmrec"]
    )
    image, text = meta["modalities"]["image"], meta["modalities"]["text"]
    assert image["model"] == "efficientnet-lite0" and image["weights"] != "random-init"
    assert text["model"] == "minilm" and text["weights"] != "random-init"  # real weights
