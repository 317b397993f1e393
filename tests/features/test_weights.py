"""Weight downloads over real HTTP on 127.0.0.1: torchvision-style checkpoints from a mirror,
a Hugging Face repository from a local hub; truncated and corrupted transfers, and offline mode."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub
from loopback_http import LoopbackServer

from mmrec.errors import MmrecError
from workflows.features import image, text, weights

pytestmark = pytest.mark.features


@pytest.fixture()
def online(monkeypatch):
    """This test may download (from 127.0.0.1 only: every URL below is a loopback server's)."""
    for name in weights.OFFLINE_ENVS:
        monkeypatch.delenv(name, raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once at its import


def _checkpoint(folder: Path) -> tuple[Path, dict]:
    """A real state dict saved under torch.hub's `name-<sha256 prefix>.pth` convention."""
    torch.manual_seed(0)
    state = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Linear(32, 8)).state_dict()
    tmp = folder / "tiny.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"tiny-{digest[:8]}.pth"
    tmp.rename(path)
    return path, state


def test_checkpoint_download_verifies_and_leaves_nothing_on_failure(tmp_path: Path, online):
    served = tmp_path / "mirror"
    served.mkdir()
    src, state = _checkpoint(served)
    cache = tmp_path / "cache"
    with LoopbackServer(served) as server:
        server.faults.truncate_at = src.stat().st_size // 2
        with pytest.raises(MmrecError, match="invalid hash value"):
            weights.download_checkpoint(server.url + src.name, cache / src.name)
        assert list(cache.iterdir()) == []  # no partial file, no truncated checkpoint

        server.reset()
        server.faults.corrupt_at = 100
        with pytest.raises(MmrecError, match="invalid hash value"):
            weights.download_checkpoint(server.url + src.name, cache / src.name)
        assert list(cache.iterdir()) == []

        server.reset()
        got = weights.download_checkpoint(server.url + src.name, cache / src.name)
        assert got.read_bytes() == src.read_bytes()
        loaded = torch.load(got, weights_only=True)
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
        weights.download_checkpoint(server.url + src.name, cache / src.name)  # cached: no request
        assert len(server.requests_for(src.name)) == 1

        wrong = served / "tiny-00000000.pth"  # a name whose hash the bytes do not have
        shutil.copy(src, wrong)
        with pytest.raises(MmrecError, match="invalid hash value"):
            weights.download_checkpoint(server.url + wrong.name, cache / wrong.name)
        assert sorted(p.name for p in cache.iterdir()) == [src.name]
        with pytest.raises(MmrecError, match="404"):
            weights.download_checkpoint(server.url + "tiny-11111111.pth", cache / "x-1111.pth")


def test_torchvision_weights_come_from_the_mirror_into_torch_home(
    tmp_path: Path, monkeypatch, online
):
    """resnet18's default weights are asked of MMREC_TORCH_MIRROR under torchvision's file name;
    bytes that are not the published ones are refused and never reach the cache."""
    import torchvision

    served = tmp_path / "mirror"
    served.mkdir()
    torch.save(torchvision.models.resnet18().state_dict(), served / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with LoopbackServer(served) as server:
        monkeypatch.setenv(weights.TORCH_MIRROR_ENV, server.url)
        with pytest.raises(MmrecError) as err:
            image.build_image_model("resnet18", None, random_init=False, seed=0)
        assert [r.path for r in server.requests] == ["/resnet18-f37072fd.pth"]
        msg = str(err.value)
        assert "invalid hash value" in msg and server.url + "resnet18-f37072fd.pth" in msg
        assert str(tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg
        assert list((tmp_path / "th" / "hub" / "checkpoints").iterdir()) == []

        monkeypatch.setenv("MMREC_OFFLINE", "1")  # offline: the same call asks nobody
        server.reset()
        with pytest.raises(MmrecError, match=r"not available offline \(MMREC_OFFLINE=1\)"):
            image.build_image_model("resnet18", None, random_init=False, seed=0)
        assert server.requests == []


def _tiny_hub_repo(root: Path, repo_id: str) -> Path:
    """A real model repository: a 1-layer BERT (safetensors) with MiniLM's tokenizer files."""
    from transformers import BertConfig, BertModel

    folder = root / repo_id
    folder.mkdir(parents=True)
    src = text.packaged_minilm_dir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    assert (folder / "model.safetensors").exists()
    return folder


def _cache_files(cache: Path) -> list[str]:
    files = (p for p in cache.rglob("*") if p.is_file() and not p.is_symlink())
    return sorted(p.name for p in files if ".locks" not in p.parts)


def test_hub_model_downloads_into_hf_home_and_loads_offline_after(
    tmp_path: Path, monkeypatch, online
):
    repo_id = "mmrec-test/tiny-bert"
    folder = _tiny_hub_repo(tmp_path / "hub", repo_id)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with FakeHub(tmp_path / "hub") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        model = text.build_text_model(repo_id, random_init=False, seed=0, max_tokens=None)
        assert hub.requests_for("model.safetensors")
        assert Path(model.source).is_relative_to(tmp_path / "hf" / "hub")
        assert model.dim == 32 and model.max_tokens == 64
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        assert model.weights == digest
        vecs, _ = text.embed_texts(model, ["a film", "another film"], 2, torch.device("cpu"))
        assert vecs.shape == (2, 32) and torch.isfinite(vecs).all()

        monkeypatch.setenv("MMREC_OFFLINE", "1")
        hub.reset()
        again = text.build_text_model(repo_id, random_init=False, seed=0, max_tokens=None)
        assert again.weights == digest and hub.requests == []
        with pytest.raises(MmrecError, match="not available offline"):
            text.build_text_model("mmrec-test/absent", False, 0, None)
        assert hub.requests == []


@pytest.mark.parametrize("fault", ["truncate", "corrupt"])
def test_hub_truncated_or_corrupted_weights_leave_no_file(
    tmp_path: Path, monkeypatch, online, fault: str
):
    repo_id = "mmrec-test/tiny-bert"
    folder = _tiny_hub_repo(tmp_path / "hub", repo_id)
    size = (folder / "model.safetensors").stat().st_size
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with FakeHub(tmp_path / "hub") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        hub.faults.fault_suffix = ".safetensors"
        if fault == "truncate":
            hub.faults.truncate_at = size // 3
        else:
            hub.faults.corrupt_at = size // 2
        with pytest.raises(MmrecError) as err:
            text.build_text_model(repo_id, random_init=False, seed=0, max_tokens=None)
        msg = str(err.value)
        if fault == "corrupt":
            assert "does not match its hash" in msg and "model.safetensors" in msg
        else:
            assert "download from the Hugging Face hub failed" in msg
        weight_blobs = [n for n in _cache_files(cache) if len(n.split(".")[0]) == 64]
        assert weight_blobs == []  # neither the bad blob nor a resumable .incomplete remains
        assert not any(p.name == "model.safetensors" for p in cache.rglob("*"))

        hub.reset()  # the next try, with a good transfer, succeeds from the same cache
        model = text.build_text_model(repo_id, random_init=False, seed=0, max_tokens=None)
        assert (
            model.weights == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        )
