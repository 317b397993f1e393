"""The whole features stage on tiny hand-built datasets: outputs, flags, resume, reruns, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feature_builders import config, make_dataset, matrix

from mmrec.config import FeaturesConfig
from mmrec.errors import MmrecError
from mmrec.io import file_digest
from mmrec.paths import DatasetPaths
from workflows.features import shards
from workflows.features.extract import extract_features
from workflows.features.image import LITE_PREPROCESSING, packaged_lite0_file

pytestmark = pytest.mark.features


def read(path: Path) -> tuple[pa.Table, dict]:
    table = pq.read_table(path)
    return table, json.loads(table.schema.metadata[b"mmrec"])


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run on a fresh tiny dataset, shared by the tests that only read it."""
    data_dir = tmp_path_factory.mktemp("done")
    make_dataset(data_dir)
    extract_features(config(data_dir))
    return data_dir


def test_outputs_dims_dtypes_flags_and_fallbacks(done: Path) -> None:
    paths = DatasetPaths.of(done, "tiny")

    img, img_meta = read(paths.modality_embeddings("image"))
    assert img.schema.field("movieId").type == pa.int32()
    assert img.schema.field("embedding").type == pa.list_(pa.float32(), 1280)
    # 4 has a truncated JPEG, 6 has no poster; 2 gray, 3 RGBA, 5 palette, 7 16-bit all decode
    assert img.column("movieId").to_pylist() == [1, 2, 3, 5, 7]
    assert [f["movieId"] for f in img_meta["posters_failed"]] == [4]
    assert img_meta["posters_missing"] == 1
    assert img_meta["weights"] == file_digest(packaged_lite0_file())
    assert img_meta["model"] == "efficientnet-lite0" and img_meta["dim"] == 1280
    assert img_meta["preprocessing"] == LITE_PREPROCESSING
    assert img_meta["items_per_s"] > 0 and "embed_s" in img_meta["timings"]

    txt, txt_meta = read(paths.modality_embeddings("text"))
    assert txt.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    assert txt.column("movieId").to_pylist() == [1, 2, 3, 4, 5, 6, 7]
    # 2: empty synopsis, 6: neither poster nor synopsis, 7: no synopsis (but tags)
    assert txt_meta["fallback_movies"] == [2, 6, 7] and txt_meta["fallback_count"] == 3
    assert txt_meta["truncated_movies"] == [4]
    assert len(txt_meta["weights"]) == 64 and txt_meta["pooling"] == "mean + l2 normalize"
    assert np.isfinite(matrix(txt)).all() and np.isfinite(matrix(img)).all()

    store, store_meta = read(paths.feature_store)
    assert store.column("movieId").to_pylist() == [1, 2, 3, 4, 5, 6, 7]
    assert store.column("has_image").type == pa.int8()
    assert store.column("has_image").to_pylist() == [1, 1, 1, 0, 1, 0, 1]
    assert store.column("has_text").to_pylist() == [1] * 7
    image = matrix(store, "image_embedding")
    assert image.dtype == np.float32 and image.shape == (7, 1280)
    assert not image[[3, 5]].any()  # missing -> zeros
    assert np.array_equal(image[[0, 1, 2, 4, 6]], matrix(img))
    assert store_meta["modalities"]["image"]["present"] == 5


def test_fallback_text_of_a_movie_without_anything_is_its_catalogue_entry(done: Path) -> None:
    from workflows.features import text
    from workflows.features.fallback import movie_texts

    items, stats = movie_texts(DatasetPaths.of(done, "tiny"), max_tags=20)
    by_id = {i.movie_id: i for i in items}
    assert by_id[6].fallback and by_id[6].text == "Nothing (2010)."
    assert by_id[7].text == "Tagged (2003). Genres: Sci-Fi. Tags: Robots, space."
    assert stats == {"movies": 7, "synopses": 4, "fallback": 3, "synopses_for_unknown_movies": 0}
    txt, _ = read(DatasetPaths.of(done, "tiny").modality_embeddings("text"))
    model = text.build_text_model("minilm", False, 0, None)
    import torch

    direct, _ = text.embed_texts(model, [by_id[6].text], 1, torch.device("cpu"))
    # the stage embedded it in a padded batch, here alone: equal up to float noise, which
    # reached 1e-4 per value on a 16-core Xeon with torch 2.11 / transformers 5 (1e-6 here)
    stored, alone = matrix(txt)[5], direct.numpy()[0]
    cosine = stored @ alone / (np.linalg.norm(stored) * np.linalg.norm(alone))
    assert cosine > 0.9999 and np.abs(stored - alone).max() < 1e-3


def test_rerun_is_a_no_op(done: Path) -> None:
    paths = DatasetPaths.of(done, "tiny")
    first = {m: paths.modality_embeddings(m).read_bytes() for m in ("image", "text")}
    first["store"] = paths.feature_store.read_bytes()
    again = extract_features(config(done))
    assert again["image"]["skipped"] and again["text"]["skipped"] and again["store"]["skipped"]
    assert {m: paths.modality_embeddings(m).read_bytes() for m in ("image", "text")} == {
        m: first[m] for m in ("image", "text")
    }
    assert paths.feature_store.read_bytes() == first["store"]


def test_interrupted_run_resumes_to_identical_output(tiny: Path, done: Path, monkeypatch) -> None:
    """Killed after the first shard; the rerun reuses it and matches an uninterrupted run."""

    real_write = shards.write_shard
    written: list[Path] = []

    def write_then_die(path, table, fp):
        if len(written) == 1:
            raise KeyboardInterrupt  # as if Ctrl-C arrived after the first shard
        real_write(path, table, fp)
        written.append(path)

    monkeypatch.setattr(shards, "write_shard", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        extract_features(config(tiny))
    monkeypatch.setattr(shards, "write_shard", real_write)
    paths = DatasetPaths.of(tiny, "tiny")
    assert [p.name for p in written] == ["part-00000.parquet"]
    assert not paths.modality_embeddings("image").exists()
    assert not list((paths.features / "_shards" / "image").glob(".*tmp"))

    resumed = extract_features(config(tiny, num_workers=2))  # workers must not change a byte
    assert resumed["image"]["shards_reused"] == 1 and resumed["image"]["shards"] == 2
    assert resumed["image"]["computed"] == 3  # the second shard only
    ref = DatasetPaths.of(done, "tiny")
    for m in ("image", "text"):
        a, _ = read(paths.modality_embeddings(m))
        b, _ = read(ref.modality_embeddings(m))
        assert a.column("movieId").equals(b.column("movieId"))
        assert matrix(a).tobytes() == matrix(b).tobytes()
    assert not (paths.features / "_shards" / "image").exists()  # merged, then cleaned up


def test_new_poster_invalidates_the_output_and_force_recomputes(tiny: Path) -> None:
    from PIL import Image

    cfg = config(tiny, modalities=("image",))
    extract_features(cfg)
    path = DatasetPaths.of(tiny, "tiny").modality_embeddings("image")
    assert extract_features(cfg)["image"]["skipped"]
    Image.new("RGB", (50, 80), (9, 9, 9)).save(tiny / "tiny" / "posters" / "6.png")
    summary = extract_features(cfg)
    assert not summary["image"]["skipped"] and summary["image"]["rows"] == 6
    before = matrix(read(path)[0])
    forced = extract_features(config(tiny, modalities=("image",), force=True))
    assert not forced["image"]["skipped"] and forced["image"]["shards_reused"] == 0
    assert matrix(read(path)[0]).tobytes() == before.tobytes()


def test_missing_weights_and_bad_input_are_clear_errors(tiny: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(MmrecError, match="not available offline"):
        extract_features(config(tiny, image_model="mobilenet_v3_small"))
    with pytest.raises(MmrecError, match="not available offline"):
        extract_features(config(tiny, modalities=("text",), text_model="facebook/bart-large"))
    with pytest.raises(MmrecError, match="movies.parquet not found"):
        extract_features(config(tmp_path, dataset="absent"))
    with pytest.raises(MmrecError, match="unknown modalities"):
        extract_features(config(tiny, modalities=("audio",)))
    syn = tiny / "tiny" / "synopses.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(syn)] * 2), syn)
    with pytest.raises(MmrecError, match=r"synopses.parquet: movieId 1 has more than one"):
        extract_features(config(tiny, modalities=("text",)))


@pytest.mark.slow
def test_resnet50_default_architecture_end_to_end(tiny: Path) -> None:
    summary = extract_features(
        config(tiny, image_model="resnet50", modalities=("image",), random_init=("image",))
    )
    assert summary["image"]["dim"] == 2048
    table, meta = read(DatasetPaths.of(tiny, "tiny").modality_embeddings("image"))
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 2048)


@pytest.mark.slow
def test_text_embeddings_recover_the_synthetic_topics(tmp_path: Path) -> None:
    """On `mmrec data synthetic` output, a movie's nearest neighbour by text shares its hidden
    topic far more often than chance (the truth is read only here, never by the stage)."""
    synthetic = pytest.importorskip("workflows.data.synthetic")
    from mmrec.config import SyntheticConfig

    synthetic.generate_synthetic(
        SyntheticConfig(data_dir=tmp_path, users=40, movies=240, ratings=2_000, seed=3)
    )
    extract_features(
        FeaturesConfig(
            dataset="synthetic",
            data_dir=tmp_path,
            modalities=("text",),
            text_model="minilm",
            batch_size=32,
            shard_size=128,
        )
    )
    txt, meta = read(DatasetPaths.of(tmp_path, "synthetic").modality_embeddings("text"))
    truth = pq.read_table(tmp_path / "synthetic" / "_truth" / "movies.parquet").to_pandas()
    topic = truth.set_index("movieId")["topic"].reindex(txt.column("movieId").to_pylist())
    vecs = matrix(txt)
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    neighbour = sims.argmax(axis=1)
    topics = topic.to_numpy()
    has_synopsis = ~np.isin(txt.column("movieId").to_numpy(), meta["fallback_movies"])
    agree = float((topics[neighbour] == topics)[has_synopsis].mean())
    shares = np.bincount(topics) / len(topics)
    chance = float((shares**2).sum())
    print(
        f"nearest-neighbour topic agreement {agree:.3f} vs chance {chance:.3f} "
        f"({has_synopsis.sum()} movies with synopses, {meta['fallback_count']} fallbacks)"
    )
    assert agree > 3 * chance and agree > 0.5
