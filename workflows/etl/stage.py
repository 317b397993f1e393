"""`run_etl`: ratings + movies (+ feature store) -> NVTabular train/valid, workflow, embeddings.

Phases: validate inputs; clean and split the ratings (streaming, see splits.py); build the
embedding matrices from the feature store; build the workflow with vocabularies from the
catalogue and the train users; fit on train; transform train and valid to Parquet; save the
workflow. Everything is written into a temporary directory that is renamed into place only at
the end, so a run is all-or-nothing; a finished run is skipped unless `force`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from mmrec.config import EtlConfig
from mmrec.contracts import FIRST_ID, PARAMETERS, DatasetPaths, EtlRunPaths, read_vocabulary
from mmrec.done import check_done, parameters_of
from mmrec.errors import MmrecError
from mmrec.io import atomic_dir, write_json_atomic
from mmrec.progress import progress
from workflows.etl import validate
from workflows.etl.cluster import compute_context
from workflows.etl.embeddings import build_matrices, save_matrices
from workflows.etl.splits import INPUT_BYTES_PER_ROW, split_ratings
from workflows.etl.summary import describe_schema, label_balance, peak_rss_mb

EMBEDDING_MODES = ("lookup", "join", "none")
FIT_SAMPLE_ROWS = 10_000


def run_name_of(cfg: EtlConfig) -> str:
    return cfg.run_name or f"{cfg.split}-{cfg.embeddings}"


def run_etl(cfg: EtlConfig) -> dict:
    """Run the ETL stage for one dataset; return (and write) its summary."""
    if cfg.embeddings not in EMBEDDING_MODES:
        raise MmrecError(
            f"unknown embeddings mode {cfg.embeddings!r}: {', '.join(EMBEDDING_MODES)}"
        )
    paths = DatasetPaths.of(cfg.data_dir, cfg.dataset)
    out = paths.etl_run(run_name_of(cfg))
    params = _parameters(cfg)
    summary = check_done(
        out.summary, params, force=cfg.force, hint=", or choose another --run-name"
    )
    if summary is not None:
        summary["skipped"] = True
        return summary

    start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    t = time.perf_counter()
    n_rows = validate.check_ratings(paths.ratings)
    catalogue = validate.load_catalogue(paths.movies)
    modalities: dict[str, int] = {}
    if cfg.embeddings != "none":
        if paths.feature_store.is_file():
            modalities = validate.check_feature_store(paths.feature_store, cfg.modalities)
        elif cfg.modalities:
            raise MmrecError(f"{paths.feature_store}: not found (run `mmrec features` first)")
    t = lap("validate", t)

    with atomic_dir(out.root) as tmp:
        staged = EtlRunPaths(tmp)
        bar = progress(total=n_rows, desc="etl: check and split ratings", unit="rows")
        try:
            split = split_ratings(
                paths.ratings,
                catalogue.movie_ids,
                tmp / "_prepared",
                kind=cfg.split,
                valid_fraction=cfg.valid_fraction,
                temporal_mode=cfg.temporal_mode,
                cold_fraction=cfg.cold_fraction,
                seed=cfg.seed,
                rating_threshold=cfg.rating_threshold,
                batch_rows=cfg.batch_rows,
                progress_bar=bar,
            )
        finally:
            bar.close()
        t = lap("split", t)

        raw_ids = catalogue.movie_ids.astype(np.int64)
        enc_ids = np.arange(FIRST_ID, FIRST_ID + raw_ids.size, dtype=np.int64)
        matrices, flags, emb_stats = {}, {}, {}
        if modalities:
            matrices, flags, emb_stats = build_matrices(
                paths.feature_store, modalities, raw_ids, enc_ids
            )
        t = lap("embeddings", t)

        # --part-size bounds a partition's size after the transform; NVTabular measures the
        # input, whose rows are far smaller (12 bytes against ~40 plus 4*d per joined vector).
        joined = matrices if cfg.embeddings == "join" else {}
        input_part = _input_part_size(cfg.part_size, joined)
        # Given, so the writer need not measure a partition's deep memory usage to choose it.
        row_group_rows = max(1024, OUTPUT_ROW_GROUP_BYTES // _output_row_bytes(joined))
        with compute_context(cfg.device, cfg.workers, cfg.scheduler) as compute:
            from merlin.io import Dataset

            from workflows.etl.workflow import build_workflow, rate_table

            graph = dict(
                catalogue=catalogue,
                train_users=split.train_users,
                out_path=tmp,
                rating_threshold=cfg.rating_threshold,
                keep_rating=cfg.keep_rating,
                count_features=cfg.count_features,
                target_encoding=cfg.target_encoding,
                target_encoding_folds=cfg.target_encoding_folds,
                seed=cfg.seed,
                embeddings=matrices if cfg.embeddings == "join" else None,
                flags=flags if cfg.embeddings == "join" else None,
                user_counts=split.user_counts,
                movie_counts=split.movie_counts,
                client=compute.client,
            )
            wf = build_workflow(**graph)
            saved_raw, saved_enc = read_vocabulary(staged)
            if not (np.array_equal(saved_raw, raw_ids) and np.array_equal(saved_enc, enc_ids)):
                raise RuntimeError(
                    f"Categorify did not encode movieId as {FIRST_ID} + catalogue position"
                )

            def dataset(path: Path) -> Dataset:
                return Dataset(str(path), engine="parquet", part_size=input_part, cpu=compute.cpu)

            train_ds, valid_ds = dataset(split.train_path), dataset(split.valid_path)
            t = lap("build", t)
            # With every vocabulary given up front, fitting only captures output dtypes (NVTabular
            # runs the graph on one partition for that): a small sample of train does it exactly,
            # without a pass over a partition of up to part_size. Target encoding needs
            # statistics, so it fits on all of train (counts come from the split pass).
            needs_stats = cfg.target_encoding
            sample = dataset(_head(split.train_path, FIT_SAMPLE_ROWS))
            wf.fit(train_ds if needs_stats else sample)
            # Target encoding: train rows out-of-fold (NVTabular's op), valid rows and serving
            # from all of train, gathered by id (workflow.rate_table says why)
            serve = wf
            if cfg.target_encoding:
                prior = split.positives["train"] / split.rows["train"]
                rates = {
                    "userId": rate_table("userId", split.user_positives, split.user_counts, prior),
                    "movieId": rate_table(
                        "movieId", split.movie_positives, split.movie_counts, prior
                    ),
                }
                serve = build_workflow(**graph, rates=rates)
                serve.fit(sample)
            fit_mode = "full train pass" if needs_stats else f"{FIT_SAMPLE_ROWS}-row train sample"
            t = lap("fit", t)
            files = {}
            for name, ds, graph_of, dest in (
                ("train", train_ds, wf, staged.train),
                ("valid", valid_ds, serve, staged.valid),
            ):
                _write_transformed(graph_of, ds, dest, row_group_rows, compute)
                if cfg.partitions:  # equal files, for Horovod ranks (models/distributed.py)
                    from workflows.etl.writer import repartition

                    files[name] = list(
                        repartition(
                            dest,
                            cfg.partitions,
                            schema=graph_of.output_schema,
                            row_group_rows=row_group_rows,
                        ).values()
                    )
                t = lap(f"transform_{name}", t)
            serve.save(str(staged.workflow), modules_byvalue=["workflows.etl.ops"])
            output_schema = serve.output_schema
            partitions = {"train": train_ds.npartitions, "valid": valid_ds.npartitions}
            cluster = compute.description
            device = compute.device
        if modalities:
            save_matrices(staged, matrices, flags)
        shutil.rmtree(tmp / "_prepared")
        t = lap("save", t)

        columns, cards = describe_schema(output_schema)
        cold = split.info.get("cold_movie_ids")
        if cold is not None:
            split.info["cold_movie_encoded_ids"] = (
                FIRST_ID + np.searchsorted(catalogue.movie_ids, np.asarray(cold, dtype=np.int32))
            ).tolist()
        timings["total"] = round(time.perf_counter() - start, 3)
        summary = {
            "dataset": cfg.dataset,
            "run_name": run_name_of(cfg),
            "path": str(out.root),
            "split": split.info,
            "embeddings": {
                "mode": cfg.embeddings,
                "modalities": modalities,
                **emb_stats,
            },
            "rating_threshold": cfg.rating_threshold,
            "input_rows": {"ratings": n_rows, "movies": int(catalogue.movie_ids.size)},
            "bad_rows": split.bad_rows,
            "rows": split.rows,
            "label_balance": label_balance(split.rows, split.positives),
            "cardinalities": cards,
            "columns": columns,
            "compute": {
                "device": device,
                "cluster": cluster,
                "part_size": cfg.part_size,
                "input_part_bytes": input_part,
                "partitions": partitions,
                "file_rows": files or None,  # --partitions: rows of each written file
                "fit": fit_mode,
            },
            "options": {
                "count_features": cfg.count_features,
                "target_encoding": cfg.target_encoding,
                "keep_rating": cfg.keep_rating,
            },
            PARAMETERS: params,
            "timings_s": timings,
            "peak_memory": peak_rss_mb(),
            "skipped": False,
        }
        write_json_atomic(staged.summary, summary)
    return summary


def _write_transformed(wf, ds, out: Path, row_group_rows: int, compute) -> None:
    """Transform `ds` and write it as Parquet into `out`.

    One CPU process: our writer (writer.py), which builds the per-movie columns in Arrow and
    overlaps Parquet encoding with the next partition; it writes the same files. A Dask
    cluster or cuDF: Merlin's own `to_parquet`, which spreads the writes over the workers.
    """
    if compute.client is not None or not compute.cpu:
        wf.transform(ds).to_parquet(str(out), shuffle=None, row_group_size=row_group_rows)
        return
    from workflows.etl.writer import write_transformed

    write_transformed(wf, ds, out, row_group_rows=row_group_rows)


def _head(path: Path, rows: int) -> Path:
    """The first `rows` rows of a Parquet file, written beside it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows))
    out = path.with_name(f"{path.stem}.head.parquet")
    pq.write_table(pa.Table.from_batches([batch]), out)
    return out


OUTPUT_BYTES_PER_ROW = 48  # ids, year, label, rating (8 bytes each) and the genres list
OUTPUT_ROW_GROUP_BYTES = 128 << 20


def _input_part_size(part_size: str, joined: dict[str, np.ndarray]) -> int:
    """Input bytes per partition so that the transformed partition is about `part_size`."""
    from dask.utils import parse_bytes

    try:
        target = parse_bytes(part_size)
    except (ValueError, TypeError) as exc:
        raise MmrecError(f"part size {part_size!r} is not a size like 256MB") from exc
    return max(1024, int(target * INPUT_BYTES_PER_ROW / _output_row_bytes(joined)))


def _output_row_bytes(joined: dict[str, np.ndarray]) -> int:
    return OUTPUT_BYTES_PER_ROW + sum(4 * m.shape[1] + 4 for m in joined.values())


def _parameters(cfg: EtlConfig) -> dict:
    """What decides the outputs (not where they go, how they are computed, or force)."""
    skip = {"data_dir", "force", "device", "workers", "scheduler", "part_size", "batch_rows"}
    out = parameters_of(cfg, skip)
    if out.get("partitions") is None:  # unset: the parameters of runs made before the option
        out.pop("partitions", None)
    return out
