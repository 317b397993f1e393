"""`mmrec features`: poster and synopsis embeddings, then the feature store (features env)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples
from mmrec.config import FeaturesConfig
from mmrec.errors import MmrecError


def register(sub: argparse._SubParsersAction) -> None:
    d = FeaturesConfig(dataset="", data_dir=Path("."))
    p = sub.add_parser(
        "features",
        help="embed posters (torchvision) and synopses (transformers); build the feature store",
        description=(
            "Embed each movie's poster and synopsis (a fallback text from title, genres and tags "
            "when it has none) and write features/<modality>.parquet and feature_store.parquet. "
            "Runs in the features environment (PyTorch); started from the pipeline environment it "
            "re-runs itself there. Interrupted runs resume from finished shards; reruns are no-ops."
        ),
        formatter_class=RAW,
        epilog=examples(
            "mmrec features --dataset ml-latest-small",
            "mmrec features --dataset synthetic --text-model minilm --random-init image",
            "mmrec features --dataset ml-25m --device cuda --batch-size 128 --num-workers 8",
            "mmrec features --dataset ml-25m --image-weights /models/resnet50-11ad3fa6.pth",
            "mmrec features --dataset synthetic --store-only --pca image=64,text=32",
        )
        + "\n\nWeights load offline only: torchvision's from $TORCH_HOME/hub/checkpoints/, "
        "Hugging Face\nmodels from the HF cache or a local folder. "
        "--random-init is for tests and demos.",
    )
    p.add_argument("--dataset", required=True, help="dataset folder under --data-dir")
    p.add_argument("--modalities", default=",".join(d.modalities), help="comma list of image,text")
    p.add_argument("--image-model", default=d.image_model, help="torchvision model name")
    p.add_argument(
        "--image-weights",
        type=Path,
        default=None,
        help="state dict file (.pth/.safetensors) instead of torchvision's cache",
    )
    p.add_argument(
        "--text-model",
        default=d.text_model,
        help="HF model id (cached) or local folder; 'minilm': the packaged MiniLM-L6-v2",
    )
    p.add_argument(
        "--random-init",
        nargs="?",
        const="image,text",
        default="",
        metavar="MODALITIES",
        help="random seeded weights for these modalities (default all; tests, demos), "
        "recorded as random-init",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument(
        "--num-workers", type=int, default=d.num_workers, help="poster decoding worker processes"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    p.add_argument(
        "--shard-size", type=int, default=d.shard_size, help="movies per resumable shard"
    )
    p.add_argument(
        "--max-text-tokens",
        type=int,
        default=None,
        help="cut texts at this many tokens (default: the model's limit)",
    )
    p.add_argument("--pca", default="", help="reduce in the store, e.g. image=64,text=32")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--store-only",
        action="store_true",
        help="only rebuild feature_store.parquet from existing features (no PyTorch)",
    )
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_features)


def _parse_pca(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise MmrecError(f"--pca: expected MODALITY=DIM, got {part!r}")
        out[name.strip()] = int(value)
    return out


def _modalities(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _argv(args: argparse.Namespace) -> list[str]:
    """The same command as flags, for running it again in the features environment."""
    argv = ["features", "--dataset", args.dataset, "--data-dir", str(data_dir_of(args))]
    for flag, value in (
        ("--modalities", args.modalities),
        ("--image-model", args.image_model),
        ("--image-weights", args.image_weights),
        ("--text-model", args.text_model),
        ("--batch-size", args.batch_size),
        ("--num-workers", args.num_workers),
        ("--device", args.device),
        ("--shard-size", args.shard_size),
        ("--max-text-tokens", args.max_text_tokens),
        ("--pca", args.pca),
        ("--seed", args.seed),
    ):
        if value is not None and value != "":
            argv += [flag, str(value)]
    if args.random_init:
        argv.append(f"--random-init={args.random_init}")
    if args.force:
        argv.append("--force")
    return argv


def _features(args: argparse.Namespace) -> int:
    from mmrec import envs

    cfg = FeaturesConfig(
        dataset=args.dataset,
        data_dir=data_dir_of(args),
        modalities=_modalities(args.modalities),
        image_model=args.image_model,
        image_weights=args.image_weights,
        text_model=args.text_model,
        random_init=_modalities(args.random_init),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        shard_size=args.shard_size,
        max_text_tokens=args.max_text_tokens,
        pca=_parse_pca(args.pca),
        seed=args.seed,
        force=args.force,
    )
    if args.store_only:
        from workflows.features.store import build_feature_store

        _print_store(build_feature_store(cfg))
        return 0
    if not envs.has_torch():
        return envs.run_in_features_env(_argv(args))
    from workflows.features.extract import extract_features

    summary = extract_features(cfg)
    for m in cfg.modalities:
        s = summary[m]
        if s["skipped"]:
            print(f"{m}: already up to date -> {s['path']} ({s['rows']} rows, dim {s['dim']})")
            continue
        extra = ", ".join(
            f"{k.replace('_', ' ')}: {s[k]}"
            for k in ("posters_missing", "posters_failed", "fallback_count", "truncated_count")
            if k in s
        )
        print(
            f"{m}: {s['rows']} rows, dim {s['dim']}, {s['model']} ({s['weights'][:12]}), "
            f"{s['items_per_s']} items/s over {s['computed']} computed, "
            f"{s['shards_reused']}/{s['shards']} shards reused; {extra} -> {s['path']}"
        )
    _print_store(summary["store"])
    return 0


def _print_store(s: dict) -> None:
    if s["skipped"]:
        print(f"feature store: already up to date -> {s['path']}")
        return
    parts = []
    for m in ("image", "text"):
        if m in s:
            info = s[m]
            ev = (
                f", PCA explained variance {info['explained_variance']:.3f}"
                if ("explained_variance" in info)
                else ""
            )
            parts.append(
                f"{m} dim {info['output_dim']} present {info['present']}/"
                f"{info['present'] + info['missing']}{ev}"
            )
    print(f"feature store: {s['rows']} movies; {'; '.join(parts)} -> {s['path']}")
