"""Poster decoding and the torchvision backbone: modes, corrupt files, heads, weights, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmrec.errors import MmrecError
from mmrec.io import file_digest
from workflows.features import image

pytestmark = pytest.mark.features


def test_rgba_is_composited_onto_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere, but only the right half opaque
    rgba[:, 2:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(image.load_rgb(tmp_path / "a.png"))
    assert out.shape == (4, 4, 3)
    assert (out[:, :2] == 255).all()  # transparent -> white, not black
    assert (out[:, 2:] == [255, 0, 0]).all()


def test_palette_with_transparency_gray_and_16_bit(tmp_path: Path) -> None:
    pal = Image.new("P", (3, 3), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.info["transparency"] = 0
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / "p.png", transparency=0)
    out = np.asarray(image.load_rgb(tmp_path / "p.png"))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (10, 200, 30)

    Image.fromarray(np.full((3, 3), 77, np.uint8)).save(tmp_path / "g.png")
    assert (np.asarray(image.load_rgb(tmp_path / "g.png")) == 77).all()

    deep = np.array([[0, 30000], [60000, 65535]], np.uint16)
    Image.fromarray(deep, "I;16").save(tmp_path / "d.png")
    out = np.asarray(image.load_rgb(tmp_path / "d.png"))
    assert out.shape == (2, 2, 3) and out[1, 1, 0] == 255 and out[0, 0, 0] == 0


def test_find_posters_keeps_known_ids_and_says_what_it_ignored(tmp_path: Path) -> None:
    d = tmp_path / "posters"
    d.mkdir()
    for name in ("1.jpg", "2.png", "2.jpg", "x.jpg", "9.jpg", "3.txt", ".4.jpg.tmp"):
        (d / name).write_bytes(b"")
    found, ignored = image.find_posters(d, {1, 2, 3, 4})
    assert found == {1: d / "1.jpg", 2: d / "2.jpg"}  # sorted: 2.jpg before 2.png
    assert any("2.png" in r and "already" in r for r in ignored)
    assert any("x.jpg" in r for r in ignored) and any("9.jpg" in r for r in ignored)
    assert any("3.txt" in r for r in ignored) and not any(".4" in r for r in ignored)
    assert image.find_posters(tmp_path / "none", {1}) == ({}, [])


def test_corrupt_and_empty_files_become_reasons_not_exceptions(tmp_path: Path) -> None:
    (tmp_path / "1.jpg").write_bytes(b"not an image at all")
    (tmp_path / "2.png").write_bytes(b"")
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(tmp_path / "3.jpg")
    ds = image.PosterDataset(
        [(1, tmp_path / "1.jpg"), (2, tmp_path / "2.png"), (3, tmp_path / "3.jpg")]
    )
    ids, batch, failed = image.collate([ds[i] for i in range(3)])
    assert ids == [3] and batch.shape == (1, 3, 224, 224) and batch.dtype == torch.float32
    assert [m for m, _ in failed] == [1, 2]
    assert all("Error" in why for _, why in failed)


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("mobilenet_v3_small", 1024)])
def test_headless_backbone_dimension_found_by_a_dry_forward(name: str, dim: int) -> None:
    model = image.build_image_model(name, None, random_init=True, seed=0)
    assert model.dim == dim and model.weights == "random-init"
    assert not model.module.training


@pytest.mark.slow
def test_resnet50_gives_the_original_2048_dimensions() -> None:
    model = image.build_image_model("resnet50", None, random_init=True, seed=0)
    assert model.dim == 2048
    assert isinstance(model.module.fc, torch.nn.Identity)


def test_missing_weights_say_where_to_put_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(MmrecError) as err:
        image.build_image_model("resnet18", None, random_init=False, seed=0)
    msg = str(err.value)
    expected = tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in msg and "--random-init" in msg
    with pytest.raises(MmrecError, match="not found"):
        image.build_image_model("resnet18", tmp_path / "nope.pth", random_init=False, seed=0)
    with pytest.raises(MmrecError, match="unknown image model"):
        image.build_image_model("resnet_nonesuch", None, random_init=True, seed=0)


def test_weights_from_a_file_and_from_the_torch_cache(tmp_path: Path, monkeypatch) -> None:
    """A real state dict on disk loads strictly, is checksummed, and gives the same vectors."""
    import torchvision

    torch.manual_seed(3)
    source = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    model = image.build_image_model("resnet18", path, random_init=False, seed=0)
    assert model.weights == file_digest(path) and model.weights_file == str(path)
    x = torch.randn(2, 3, 224, 224)
    source.fc = torch.nn.Identity()
    with torch.no_grad():
        assert torch.equal(model.module(x), source.eval()(x))

    cache = tmp_path / "th" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet18-f37072fd.pth").write_bytes(path.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    cached = image.build_image_model("resnet18", None, random_init=False, seed=0)
    assert cached.weights == model.weights

    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "m.pth")
    with pytest.raises(MmrecError, match="do not fit"):
        image.build_image_model("resnet18", tmp_path / "m.pth", random_init=False, seed=0)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(MmrecError, match="cannot load weights"):
        image.build_image_model("resnet18", tmp_path / "junk.pth", random_init=False, seed=0)


def test_batched_equals_one_at_a_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = []
    for mid in range(4):
        arr = rng.integers(0, 256, (120 + mid * 9, 80 + mid * 5, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{mid}.png")
        items.append((mid, tmp_path / f"{mid}.png"))
    model = image.build_image_model("mobilenet_v3_small", None, random_init=True, seed=0)
    cpu = torch.device("cpu")
    ids, batched, failed = image.embed_posters(model, items, 3, 0, cpu)
    single = torch.cat([image.embed_posters(model, [it], 1, 0, cpu)[1] for it in items])
    assert ids == list(range(4)) and not failed
    assert torch.allclose(batched, single, atol=1e-4)


@pytest.fixture(scope="module")
def lite0() -> image.ImageModel:
    return image.build_image_model(image.LITE0, None, random_init=False, seed=0)


def test_efficientnet_lite0_loads_its_packaged_imagenet_weights(lite0) -> None:
    path = image.packaged_lite0_file()
    assert path is not None and lite0.weights == file_digest(path)
    assert lite0.weights_file == str(path) and lite0.dim == 1280
    assert lite0.preprocessing == image.LITE_PREPROCESSING and not lite0.module.training
    assert isinstance(lite0.module._fc, torch.nn.Identity)  # pooled features, not logits


def test_efficientnet_lite0_recognises_real_photographs(tmp_path: Path, lite0) -> None:
    """Its own preprocessing and the headless features through the ImageNet head classify real
    photographs shipped in packages (matplotlib: Grace Hopper in uniform; scikit-learn: a daisy)."""
    from efficientnet_lite_pytorch import EfficientNet

    classifier = EfficientNet.from_name(image.LITE0)
    classifier.load_state_dict(torch.load(image.packaged_lite0_file(), weights_only=True))
    classifier.eval()
    import matplotlib

    photos = {Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg": 652}
    sklearn = pytest.importorskip("sklearn")
    photos[Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg"] = 985
    items = list(enumerate(photos))
    ids, vectors, failed = image.embed_posters(lite0, items, 2, 0, torch.device("cpu"))
    assert ids == [0, 1] and not failed and vectors.shape == (2, 1280)
    with torch.no_grad():
        logits = classifier._fc(vectors)
        transform = image.preprocess(image.LITE0)
        direct = classifier(torch.stack([transform(image.load_rgb(p)) for p in photos]))
    assert torch.allclose(logits, direct, atol=1e-4)
    top3 = logits.topk(3).indices.tolist()
    for (_, wanted), top in zip(photos.items(), top3, strict=True):
        assert wanted in top, f"ImageNet class {wanted} not in the top 3 {top}"
