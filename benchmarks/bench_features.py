"""Throughput of poster and synopsis embedding: batched pipeline vs the original one-at-a-time loop.

The original series embedded one poster / one synopsis per forward pass in a Python loop, opening
each image with PIL on the spot. This script times that baseline and the features stage's batched
code (DataLoader workers, length-sorted text batches) side by side, in the same process, on the
same generated inputs, at several batch sizes. Run it on a GPU with --device gpu.

    .venv-features/bin/python benchmarks/bench_features.py --images 32 --texts 64
    .venv-features/bin/python benchmarks/bench_features.py --device gpu --images 2048 --texts 4096
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MMREC_NO_PROGRESS", "1")

import numpy as np
import torch
from PIL import Image

from mmrec.config import DEVICES, device_name, parse_ints
from workflows.features import image, text
from workflows.features.extract import torch_device

WORDS = (
    "a young detective returns to her hometown where an old family secret waits in the "
    "abandoned lighthouse while a storm cuts the island off and friends turn into suspects "
    "love war space robot heist journey river city night winter dream ghost king"
).split()


def make_posters(folder: Path, n: int, seed: int) -> list[tuple[int, Path]]:
    """JPEG posters shaped like TMDB's w342 (342x513) with some structure, not pure noise."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        base = rng.integers(0, 256, (3,), dtype=np.uint8)
        arr = np.empty((513, 342, 3), np.uint8)
        arr[:] = base
        arr[100:300, 50:290] = rng.integers(0, 256, (200, 240, 3), dtype=np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        items.append((i, path))
    return items


def make_texts(n: int, seed: int, chars: int = 290) -> list[str]:
    """Synopsis-like texts of about `chars` characters (MovieLens/TMDB overviews average ~300)."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        words: list[str] = []
        target = int(chars * r.uniform(0.5, 1.5))
        while sum(len(w) + 1 for w in words) < target:
            words.append(r.choice(WORDS))
        out.append(" ".join(words).capitalize() + ".")
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def baseline_images(model: image.ImageModel, items, device) -> float:
    """One image per forward: open with PIL, transform, forward, in a plain loop."""
    tf = image.preprocess()
    net = model.module.to(device)
    sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        for _, path in items:
            x = tf(Image.open(path).convert("RGB")).unsqueeze(0).to(device)
            net(x).cpu()
    sync(device)
    return len(items) / (time.perf_counter() - t)


def batched_images(model, items, batch, workers, device) -> float:
    sync(device)
    t = time.perf_counter()
    image.embed_posters(model, items, batch, workers, device)
    sync(device)
    return len(items) / (time.perf_counter() - t)


def baseline_texts(model: text.TextModel, texts, device) -> float:
    """One text per forward: tokenize, forward, mean over its tokens, in a plain loop."""
    net = model.encoder.to(device)
    tok = model.tokenizer
    sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        for s in texts:
            enc = tok(s, return_tensors="pt", truncation=True, max_length=model.max_tokens)
            enc = {k: v.to(device) for k, v in enc.items() if k != "token_type_ids"}
            net(**enc).last_hidden_state.mean(dim=1).cpu()
    sync(device)
    return len(texts) / (time.perf_counter() - t)


def batched_texts(model, texts, batch, device) -> float:
    sync(device)
    t = time.perf_counter()
    text.embed_texts(model, texts, batch, device)
    sync(device)
    return len(texts) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=DEVICES, type=device_name)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--batch-sizes", default="1,8,32,64")
    ap.add_argument("--image-model", default="resnet50")
    ap.add_argument("--text-model", default="minilm")
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--skip", choices=("image", "text"), default=None)
    args = ap.parse_args()
    device = torch_device(args.device, torch)
    batches = list(parse_ints(args.batch_sizes))
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    rows: list[tuple[str, str, float]] = []

    if args.skip != "image":
        with tempfile.TemporaryDirectory() as tmp:
            items = make_posters(Path(tmp), args.images, 0)
            model = image.build_image_model(args.image_model, None, random_init=True, seed=0)
            batched_images(model, items[:2], 2, 0, device)  # warm-up (allocator, kernels)
            base = baseline_images(model, items, device)
            rows.append((f"image {args.image_model} (random-init)", "one-at-a-time loop", base))
            for b in batches:
                rate = batched_images(model, items, b, args.num_workers, device)
                rows.append(("", f"batch {b}, {args.num_workers} workers", rate))
    if args.skip != "text":
        texts = make_texts(args.texts, 0)
        model = text.build_text_model(args.text_model, random_init=False, seed=0, max_tokens=None)
        batched_texts(model, texts[:4], 4, device)
        base = baseline_texts(model, texts, device)
        rows.append((f"text {args.text_model}", "one-at-a-time loop", base))
        for b in batches:
            rows.append(("", f"batch {b}, length-sorted", batched_texts(model, texts, b, device)))

    print(f"\n{'model':38} {'mode':28} {'items/s':>9} {'x loop':>7}")
    base = 0.0
    for label, mode, rate in rows:
        base = rate if mode == "one-at-a-time loop" else base
        print(f"{label:38} {mode:28} {rate:9.1f} {rate / base:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
