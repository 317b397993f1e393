"""Poster embeddings: a torchvision classifier without its head, on ImageNet-preprocessed posters.

Posters are decoded in DataLoader workers; a poster that cannot be read gets no vector and a reason,
never an exception, because one bad file must not stop tens of thousands of good ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from mmrec.errors import MmrecError
from mmrec.io import file_digest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSING = "resize 256 (shorter side, bilinear), center crop 224, ImageNet mean/std"
POSTER_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageModel:
    module: nn.Module
    name: str
    dim: int
    weights: str  # sha256 of the weight file, or "random-init"
    weights_file: str | None


def find_posters(poster_dir: Path, movie_ids: set[int]) -> tuple[dict[int, Path], list[str]]:
    """`<movieId>.<ext>` files for known movies; also the names that were ignored, and why."""
    found: dict[int, Path] = {}
    ignored: list[str] = []
    if not poster_dir.is_dir():
        return found, ignored
    for path in sorted(poster_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # atomic-write temporaries and folders
        if path.suffix.lower() not in POSTER_EXTENSIONS:
            ignored.append(f"{path.name}: not an image extension")
            continue
        try:
            mid = int(path.stem)
        except ValueError:
            ignored.append(f"{path.name}: name is not <movieId>.<ext>")
            continue
        if mid not in movie_ids:
            ignored.append(f"{path.name}: movieId {mid} not in movies.parquet")
        elif mid in found:
            ignored.append(f"{path.name}: movieId {mid} already has {found[mid].name}")
        else:
            found[mid] = path
    return found, ignored


def load_rgb(path: Path) -> Image.Image:
    """Decode any PIL mode to RGB; transparency is composited onto white, not onto black."""
    with Image.open(path) as img:
        img.load()
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA", "PA") or img.mode.endswith("a"):
            rgba = img.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            canvas.alpha_composite(rgba)
            return canvas.convert("RGB")
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # high bit depth greyscale: scale to 8 bits instead of clipping
            import numpy as np

            arr = np.asarray(img, dtype=np.float64)
            hi = arr.max() if arr.size else 0.0
            arr = arr * (255.0 / hi) if hi > 255 else arr
            return Image.fromarray(arr.clip(0, 255).astype("uint8"), "L").convert("RGB")
        return img.convert("RGB")


def preprocess() -> Callable[[Image.Image], torch.Tensor]:
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class PosterDataset(torch.utils.data.Dataset):
    """(movieId, tensor or None, failure reason or None) per poster; decode errors are data."""

    def __init__(self, items: Sequence[tuple[int, Path]]) -> None:
        self.items = list(items)
        self.transform = preprocess()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        mid, path = self.items[i]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = load_rgb(path)
            return mid, self.transform(img), None
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Warning) as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return mid, None, f"{path.name}: {reason}"[:300]
        except Image.DecompressionBombError as exc:
            return mid, None, f"{path.name}: {exc}"[:300]


def collate(batch: list) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    """Stack the decoded posters; pass the failures through beside them."""
    ok = [(mid, t) for mid, t, _ in batch if t is not None]
    failed = [(mid, why) for mid, _, why in batch if why is not None]
    ids = [mid for mid, _ in ok]
    return ids, (torch.stack([t for _, t in ok]) if ok else None), failed


def _replace_head(model: nn.Module, name: str) -> nn.Module:
    """Swap the last Linear layer (the classifier) for Identity, like resnet's `fc` originally."""
    last = None
    for qual, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = qual
    if last is None:
        raise MmrecError(
            f"image model {name!r} has no Linear classifier head to remove; "
            "pick a torchvision classification model such as resnet50"
        )
    parent = model
    *path, leaf = last.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, nn.Identity())
    return model


def _default_weights_file(name: str) -> tuple[Path, str]:
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as exc:
        raise MmrecError(f"torchvision has no pretrained weights enum for {name!r}") from exc
    filename = weights.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename, weights.url


def _load_state_dict(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MmrecError(f"{path}: cannot load weights: {type(exc).__name__}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MmrecError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def build_image_model(
    name: str, weights_file: Path | None, random_init: bool, seed: int
) -> ImageModel:
    """The headless backbone in eval mode, its pooled dimension, and where its weights came from."""
    from torchvision.models import get_model, list_models

    if name not in list_models():
        raise MmrecError(
            f"unknown torchvision model {name!r}; examples: resnet50, resnet18, "
            "efficientnet_b0, mobilenet_v3_small, convnext_tiny, vit_b_16"
        )
    torch.manual_seed(seed)
    model = get_model(name, weights=None)
    if random_init:
        checksum, source = "random-init", None
    else:
        if weights_file is None:
            path, url = _default_weights_file(name)
            if not path.exists():
                raise MmrecError(
                    f"pretrained weights for {name!r} are not available offline: put "
                    f"{url.rsplit('/', 1)[-1]} (from {url}) at {path} (torchvision's cache, "
                    "under $TORCH_HOME/hub/checkpoints), "
                    "or pass --image-weights FILE, or --random-init for a test run"
                )
        else:
            path = Path(weights_file)
            if not path.is_file():
                raise MmrecError(f"image weights file {path} not found")
        state = _load_state_dict(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0:3]
            raise MmrecError(
                f"{path}: weights do not fit torchvision {name!r}: {' '.join(first)}"
            ) from exc
        checksum, source = file_digest(path), str(path)
    model = _replace_head(model, name).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224))
    if out.ndim != 2:
        raise MmrecError(f"image model {name!r} outputs shape {tuple(out.shape)}, not a vector")
    return ImageModel(model, name, int(out.shape[1]), checksum, source)


def embed_posters(
    model: ImageModel,
    items: Sequence[tuple[int, Path]],
    batch_size: int,
    num_workers: int,
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[int], torch.Tensor, list[tuple[int, str]]]:
    """Vectors (float32, CPU) for the posters that decode, in item order; failures with reasons."""
    loader = torch.utils.data.DataLoader(
        PosterDataset(items),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    net = model.module.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    ids: list[int] = []
    vectors: list[torch.Tensor] = []
    failed: list[tuple[int, str]] = []
    with torch.inference_mode():
        for batch_ids, batch, batch_failed in loader:
            failed.extend(batch_failed)
            if batch is not None:
                batch = batch.to(device, non_blocking=True)
                if device.type == "cuda":
                    batch = batch.contiguous(memory_format=torch.channels_last)
                    with torch.autocast("cuda", dtype=torch.float16):
                        out = net(batch)
                else:
                    out = net(batch)
                vectors.append(out.float().cpu())
                ids.extend(batch_ids)
            if on_batch is not None:
                on_batch(len(batch_ids) + len(batch_failed))
    stacked = torch.cat(vectors) if vectors else torch.zeros(0, model.dim)
    return ids, stacked, failed


def weights_identity(name: str, weights_file: Path | None, random_init: bool, seed: int) -> list:
    """What decides the weights, cheaply (no hashing): tells whether old outputs still fit."""
    if random_init:
        return ["random-init", seed]
    path = Path(weights_file) if weights_file is not None else _default_weights_file(name)[0]
    if not path.exists():
        return [str(path), None]
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]
