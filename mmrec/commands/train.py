"""`mmrec train`: fit a DLRM or two-tower model on an ETL run."""

from __future__ import annotations

import argparse
import json

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples
from mmrec.config import TrainConfig


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a DLRM (ranking) or two-tower (retrieval) model on an ETL run",
        formatter_class=RAW,
        epilog=examples(
            "mmrec train --dataset synthetic --model dlrm --modalities text,image",
            "mmrec train --dataset synthetic --model dlrm --modalities text,image --control shuffled",
            "mmrec train --dataset ml-latest-small --model two-tower --modalities none",
            "mmrec train --dataset ml-25m --model dlrm --etl-run random-lookup --batch-size 16384",
        )
        + "\n\nUnset hyper-parameters take per-size defaults (models.train.defaults_for)."
        + "\nMulti-GPU: in the Merlin image, `horovodrun -np N mmrec train ...` (not tested here).",
    )
    d = TrainConfig(dataset="", data_dir=data_dir_of(argparse.Namespace(data_dir=None)))
    p.add_argument("--dataset", required=True, help="dataset folder under --data-dir")
    p.add_argument("--model", choices=("dlrm", "two-tower"), default=d.model)
    p.add_argument(
        "--modalities",
        default="none",
        help="pretrained vectors to use: none | text | image | text,image (default none)",
    )
    p.add_argument(
        "--control",
        choices=("none", "constant", "shuffled"),
        default=d.control,
        help="ablation: replace the vectors by their mean (constant) or permute them (shuffled)",
    )
    p.add_argument("--etl-run", default=None, help="ETL run folder (default: the only one)")
    p.add_argument(
        "--run-name", default=None, help="default <etl-run>.<model>.<modalities>.<control>"
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="upper bound (early stopping)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    p.add_argument("--embedding-dim", type=int, default=None)
    p.add_argument("--mlp", type=_ints, default=None, help="e.g. 64,32 (DLRM top / tower MLP)")
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--l2", type=float, default=None, help="L2 on looked-up embedding rows")
    p.add_argument("--no-bias", action="store_true", help="DLRM without per-user/movie biases")
    p.add_argument(
        "--id-dropout",
        type=float,
        default=None,
        help="share of train rows whose movie id is hidden (teaches scoring from content)",
    )
    p.add_argument("--temperature", type=float, default=None, help="two-tower logits temperature")
    p.add_argument(
        "--interactions",
        choices=("liked", "all"),
        default=None,
        help="two-tower training rows: liked ones only, or every rating (default: all)",
    )
    p.add_argument(
        "--no-popularity-correction",
        action="store_true",
        help="two-tower: rank by the raw dot product (no log-popularity added back)",
    )
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--mixed-precision", choices=("auto", "on", "off"), default=d.mixed_precision)
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from models.inputs import parse_modalities
    from models.train import train

    cfg = TrainConfig(
        dataset=args.dataset,
        data_dir=data_dir_of(args),
        model=args.model,
        modalities=parse_modalities(args.modalities),
        control=args.control,
        etl_run=args.etl_run,
        run_name=args.run_name,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.lr,
        embedding_dim=args.embedding_dim,
        mlp=args.mlp,
        dropout=args.dropout,
        l2_reg=args.l2,
        bias=not args.no_bias,
        id_dropout=args.id_dropout,
        temperature=args.temperature,
        interactions=args.interactions,
        popularity_correction=not args.no_popularity_correction,
        patience=args.patience,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        force=args.force,
    )
    summary = train(cfg)
    status = "already trained" if summary.get("skipped") else "done"
    print(f"{summary['run']}: {status} -> {summary['path']}")
    print(json.dumps(summary["metrics"], indent=1))
    return 0
