"""The text encoder: the real packaged MiniLM, pooling, length-sorted batches, models offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrec.errors import MmrecError
from workflows.features import text
from workflows.features.fallback import fallback_text

pytestmark = pytest.mark.features
CPU = torch.device("cpu")
TEXTS = [
    "A cowboy doll is profoundly threatened when a new spaceman figure supplants him.",
    "",
    "Une jeune serveuse parisienne décide de changer la vie des autres. 東京の物語。 Ωμέγα.",
    "heist " * 2000,
    "Short.",
]


@pytest.fixture(scope="module")
def minilm() -> text.TextModel:
    return text.build_text_model("minilm", random_init=False, seed=0, max_tokens=None)


def test_packaged_minilm_is_found_and_read_as_sentence_transformers(minilm) -> None:
    folder = text.packaged_minilm_dir()
    assert folder is not None and (folder / "modules.json").exists()
    assert minilm.dim == 384 and minilm.max_tokens == 256
    assert minilm.pooling == "mean" and minilm.normalize
    assert len(minilm.weights) == 64 and minilm.weights != "random-init"


def test_matches_sentence_transformers_reference(minilm) -> None:
    """Our mean pooling + normalisation reproduces the library the model was published for."""
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(text.packaged_minilm_dir()), device="cpu")
    ours, _ = text.embed_texts(minilm, TEXTS, 2, CPU)
    theirs = ref.encode(TEXTS, batch_size=2, convert_to_numpy=True)
    assert np.abs(ours.numpy() - theirs).max() < 1e-4


def test_length_sorted_batches_equal_one_at_a_time(minilm) -> None:
    batched, cut = text.embed_texts(minilm, TEXTS, 3, CPU)
    single = torch.cat([text.embed_texts(minilm, [t], 1, CPU)[0] for t in TEXTS])
    assert torch.allclose(batched, single, atol=1e-5)
    assert cut == [False, False, False, True, False]  # only the 2,000-word text hits 256 tokens
    assert batched.dtype == torch.float32 and torch.isfinite(batched).all()
    norms = batched.norm(dim=1)
    assert torch.allclose(norms, torch.ones(5), atol=1e-5)
    again, _ = text.embed_texts(minilm, TEXTS, 3, CPU)
    assert torch.equal(batched, again)


def test_meaning_survives_embedding(minilm) -> None:
    vecs, _ = text.embed_texts(
        minilm,
        ["A detective hunts a serial killer.", "Police chase a murderer.", "A cake recipe."],
        8,
        CPU,
    )
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_mask_aware_pooling() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(text.pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(text.pool(hidden, mask, "max"), torch.tensor([[3.0, 4.0]]))
    assert torch.equal(text.pool(hidden, mask, "cls"), torch.tensor([[1.0, 2.0]]))


def test_max_text_tokens_cuts_earlier() -> None:
    model = text.build_text_model("minilm", random_init=False, seed=0, max_tokens=16)
    assert model.max_tokens == 16
    _, cut = text.embed_texts(model, TEXTS, 4, CPU)
    assert cut[0] and cut[3] and not cut[4]


def test_models_not_available_offline_fail_clearly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    for random_init in (False, True):  # without files even the config is missing
        with pytest.raises(MmrecError) as err:
            text.build_text_model("facebook/bart-large", random_init, 0, None)
        assert "not available offline" in str(err.value) and "--text-model" in str(err.value)
    folder = tmp_path / "noweights"
    shutil.copytree(text.packaged_minilm_dir(), folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(MmrecError, match="no weights"):
        text.build_text_model(str(folder), False, 0, None)
    random = text.build_text_model(str(folder), True, 0, None)  # config + tokenizer suffice
    assert random.weights == "random-init" and random.dim == 384


def _tiny_bart_folder(tmp_path: Path) -> Path:
    """An encoder-decoder model folder: a small BART config beside MiniLM's (BERT) tokenizer."""
    from transformers import BartConfig

    folder = tmp_path / "tiny-bart"
    folder.mkdir()
    src = text.packaged_minilm_dir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    cfg = BartConfig(
        vocab_size=30522,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    cfg.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bart"
    return folder


def test_encoder_decoder_uses_the_encoder_and_is_seeded(tmp_path: Path) -> None:
    folder = _tiny_bart_folder(tmp_path)
    model = text.build_text_model(str(folder), random_init=True, seed=5, max_tokens=None)
    assert model.dim == 32 and model.pooling == "mean" and not model.normalize
    assert type(model.encoder).__name__ == "BartEncoder"
    assert model.max_tokens == 64
    a, cut = text.embed_texts(model, TEXTS, 2, CPU)
    b, _ = text.embed_texts(text.build_text_model(str(folder), True, 5, None), TEXTS, 2, CPU)
    c, _ = text.embed_texts(text.build_text_model(str(folder), True, 6, None), TEXTS, 2, CPU)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert cut[3]


def test_fallback_text() -> None:
    assert (
        fallback_text("Heat (1995)", 1995, ["Action", "Crime"], ["heist", "Pacino"])
        == "Heat (1995). Genres: Action, Crime. Tags: heist, Pacino."
    )
    assert fallback_text("Untitled", 2010, ["(no genres listed)"], []) == "Untitled (2010)."
    assert fallback_text("X", None, [], []) == "X."
