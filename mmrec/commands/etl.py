"""`mmrec etl`: split ratings, fit the NVTabular workflow on train, write model inputs."""

from __future__ import annotations

import argparse
import json

from mmrec.commands import stage_command
from mmrec.config import EtlConfig
from mmrec.options import config_from
from mmrec.runtime import skip_tensorflow


def register(sub: argparse._SubParsersAction) -> None:
    stage_command(
        sub,
        "etl",
        EtlConfig,
        _etl,
        help="NVTabular ETL: split, encode, label, attach item embeddings (CPU or GPU, Dask)",
        description=(
            "Read ratings.parquet, movies.parquet and (if present) feature_store.parquet of a "
            "dataset; drop and count bad rows; split; fit an NVTabular workflow on train; write "
            "<dataset>/etl/<run-name>/ (train/, valid/, workflow/, categories/, embeddings/, "
            "summary.json). Reruns are no-ops unless --force."
        ),
        example_lines=(
            "mmrec etl --dataset ml-latest-small",
            "mmrec etl --dataset synthetic --split cold-items --cold-fraction 0.1",
            "mmrec etl --dataset ml-25m --split temporal --temporal-mode leave-last-out",
            "mmrec etl --dataset synthetic --embeddings join --modalities image,text",
            "mmrec etl --dataset ml-25m --device gpu --workers 2 --part-size 1GB",
            "mmrec etl --dataset ml-25m --scheduler tcp://10.0.0.5:8786",
            "mmrec etl --dataset synthetic --partitions 4   # for horovodrun -np 4 mmrec train",
        ),
    )


def _etl(args: argparse.Namespace) -> int:
    skip_tensorflow()
    from workflows.etl.stage import run_etl

    cfg = config_from(EtlConfig, args)
    s = run_etl(cfg)
    status = "already up to date" if s.get("skipped") else "done"
    rows = ", ".join(f"{k}: {v:,}" for k, v in s["rows"].items())
    dropped = s["bad_rows"]["dropped_total"]
    print(f"{s['dataset']}: {status} -> {s['path']} ({rows}; bad rows dropped: {dropped:,})")
    print(json.dumps({"cardinalities": s["cardinalities"], "timings_s": s["timings_s"]}))
    return 0
