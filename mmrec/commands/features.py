"""`mmrec features`: poster and synopsis embeddings, then the feature store (features env)."""

from __future__ import annotations

import argparse

from mmrec.commands import stage_command
from mmrec.config import FeaturesConfig, content_defaults
from mmrec.options import argv_of, config_from, option_fields


def register(sub: argparse._SubParsersAction) -> None:
    p = stage_command(
        sub,
        "features",
        FeaturesConfig,
        _features,
        help="embed posters (torchvision) and synopses (transformers); build the feature store",
        description=(
            "Embed each movie's poster and synopsis (a fallback text from title, genres and tags "
            "when it has none) and write features/<modality>.parquet and feature_store.parquet. "
            "Runs in the features environment (PyTorch); started from the pipeline environment it "
            "re-runs itself there. Interrupted runs resume from finished shards; reruns are no-ops."
        ),
        example_lines=(
            "mmrec features --dataset ml-latest-small",
            "mmrec features --dataset synthetic --text-model minilm --random-init image",
            "mmrec features --dataset ml-25m --device gpu --batch-size 128 --num-workers 8",
            "mmrec features --dataset ml-25m --image-weights /models/resnet50-11ad3fa6.pth",
            "mmrec features --dataset synthetic --store-only --pca image=64,text=32",
        ),
        note="\n\nUnnamed models follow the dataset (mmrec.config.content_defaults): offline-capable"
        "\nones on synthetic data, the original series' ResNet-50 and BART-large on MovieLens."
        "\nWeights load offline only: torchvision's from $TORCH_HOME/hub/checkpoints/, "
        "Hugging Face\nmodels from the HF cache or a local folder. "
        "--random-init is for tests and demos.",
    )
    p.add_argument(
        "--store-only",
        action="store_true",
        help="only rebuild feature_store.parquet from existing features (no PyTorch)",
    )


def _config(args: argparse.Namespace) -> FeaturesConfig:
    """The stage's config; models left unset take the dataset's defaults (content_defaults)."""
    unset = {k: v for k, v in content_defaults(args.dataset).items() if getattr(args, k) is None}
    return config_from(FeaturesConfig, args, **unset)


def _argv(cfg: FeaturesConfig) -> list[str]:
    """The same command as flags, every option explicit, for the features environment."""
    values = {name: getattr(cfg, name) for name in option_fields(FeaturesConfig)}
    argv = ["features", *argv_of(FeaturesConfig, values), "--data-dir", str(cfg.data_dir)]
    return argv + (["--force"] if cfg.force else [])


def _features(args: argparse.Namespace) -> int:
    from mmrec import envs

    cfg = _config(args)
    if args.store_only:
        from workflows.features.store import build_feature_store

        _print_store(build_feature_store(cfg))
        return 0
    if not envs.has_torch():
        return envs.run_in_features_env(_argv(cfg))
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
