"""What `train` does differently for ranking (DLRM) and retrieval (two-tower), behind one interface.

Merlin Models keeps ranking and retrieval apart; so does this module. `train()` reads only this
interface: per-size defaults, which columns the model reads, which rows it trains on, how it is
built and compiled (with the callbacks that put its monitored metric into the Keras logs), and
how the best epoch is scored on the whole validation split and saved. The training loop itself
(resume, early stopping, ranks, the atomic publish) is shared and lives in models/train.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmrec.config import TrainConfig
from mmrec.contracts import TrainRunPaths
from mmrec.errors import MmrecError
from mmrec.io import write_json_atomic
from models.distributed import whole_split, wrap_optimizer
from models.inputs import EtlRun, make_loader

VALID_BATCH = 8192


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What every task method reads: the options, the resolved hyper-parameters (learning rate
    already scaled for the ranks), the ETL run, the columns the model fits on, the gathered
    pretrained tables and their statistics."""

    cfg: TrainConfig
    hp: dict[str, Any]
    run: EtlRun
    schema: Any
    tables: Any
    stats: Any


@dataclasses.dataclass
class Built:
    """A compiled model and what fitting and scoring it needs."""

    model: Any
    callbacks: list[Any]  # callbacks that add the monitored value to the logs
    valid_loader: Any = None  # what Keras validates on each epoch (None: the callbacks do it)
    data: Any = None  # whatever else `publish` needs (two-tower: RetrievalData)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)  # publish's additions


class Task:
    """One kind of model. Subclasses fill in every member; `train()` branches on nothing else."""

    monitor: ClassVar[str]  # the validation metric early stopping maximises
    continuous: ClassVar[bool]  # whether the ETL's continuous columns are model inputs
    with_label: ClassVar[bool]  # whether the fitted rows carry the label column

    def defaults(self, train_rows: int) -> dict[str, Any]:
        """Hyper-parameters by dataset size: small data needs strong regularisation, big speed."""
        raise NotImplementedError

    def positives_only(self, hp: dict[str, Any]) -> bool:
        """Whether training reads only the liked rows."""
        raise NotImplementedError

    def holdout(self, cfg: TrainConfig) -> tuple[float, int] | None:
        """(fraction, seed) of train rows kept out of fitting (make_loader's `holdout`)."""
        return None

    def filtered_rows(self, cfg: TrainConfig, hp: dict[str, Any]) -> tuple[str, str]:
        """(which rows of each file training reads, the option that reads them all); empty
        when it reads whole files. Horovod's step evening (even_steps) says them."""
        return "", ""

    def build(self, x: Inputs) -> Built:
        """Build and compile the model, the same way for a fresh and a resumed run."""
        raise NotImplementedError

    def publish(self, built: Built, x: Inputs, out: Path, sharded: bool) -> dict[str, Any]:
        """Score the (best-epoch) model on the whole validation split, save it under `out`,
        return its metrics. `sharded`: Keras validated one rank's shard, not the whole split.
        Models are saved without the optimizer, so reloading needs no Horovod ops."""
        raise NotImplementedError


def _size(train_rows: int) -> tuple[bool, bool]:
    """(small, large): the size tiers both kinds of model pick their defaults by."""
    return train_rows < 1_000_000, train_rows >= 10_000_000


def _adam(learning_rate: float) -> Any:
    import tensorflow as tf

    return wrap_optimizer(tf.keras.optimizers.Adam(learning_rate))


class Ranking(Task):
    """DLRM on every rated row, label = liked; AUC on the validation rows."""

    monitor = "val_auc"
    continuous = True
    with_label = True

    def defaults(self, train_rows: int) -> dict[str, Any]:
        small, large = _size(train_rows)
        return {
            "batch_size": 1024 if small else (16384 if large else 4096),
            "epochs": 20 if small else (3 if large else 8),
            "learning_rate": 3e-3,
            "embedding_dim": 32 if small else 64,
            "mlp": (64, 32),
            "dropout": 0.2,
            "l2_reg": 1e-3,
            "id_dropout": 0.2,
            "temperature": None,
        }

    def positives_only(self, hp: dict[str, Any]) -> bool:
        return False

    def holdout(self, cfg: TrainConfig) -> tuple[float, int] | None:
        if not 0 <= cfg.calibration_fraction < 0.5:
            raise MmrecError(
                f"--calibration-fraction {cfg.calibration_fraction}: give a share in [0, 0.5)"
            )
        return (cfg.calibration_fraction, cfg.seed) if cfg.calibration_fraction > 0 else None

    def filtered_rows(self, cfg: TrainConfig, hp: dict[str, Any]) -> tuple[str, str]:
        if self.holdout(cfg) is None:
            return "", ""
        return "the rows outside the calibration slice", ": --calibration-fraction 0 reads all"

    def build(self, x: Inputs) -> Built:
        import tensorflow as tf

        from models.dlrm import build_dlrm

        cfg, hp, run, schema, tables, stats = x.cfg, x.hp, x.run, x.schema, x.tables, x.stats
        model = build_dlrm(
            schema,
            embedding_dim=hp["embedding_dim"],
            top_mlp=hp["mlp"],
            dropout=hp["dropout"],
            l2_reg=hp["l2_reg"],
            bias_l2_reg=hp["l2_reg"] / 10,
            bias=cfg.bias,
            pretrained_stats=stats,
        )
        # early stopping needs a steady estimate, not millions of rows every epoch (ML-25M has
        # 6.8M): a fixed hashed sample; publish scores the whole split once at the end
        total = int(run.summary.get("rows", {}).get("valid", 0))
        sample = None
        if 0 < cfg.valid_sample_rows < total:
            sample = (cfg.valid_sample_rows / total, cfg.seed)
        valid_loader = make_loader(
            run.valid_dir, schema, tables, VALID_BATCH, shuffle=False, holdout=sample,
            held_out_rows=True,
        )  # fmt: skip
        summary: dict[str, Any] = {}
        if sample is not None:
            summary["validation_sample"] = {"fraction": sample[0], "of_rows": total}
        model.compile(
            optimizer=_adam(hp["learning_rate"]), metrics=[tf.keras.metrics.AUC(name="auc")]
        )
        return Built(model, [], valid_loader=valid_loader, summary=summary)

    def publish(self, built: Built, x: Inputs, out: Path, sharded: bool) -> dict[str, Any]:
        from models.towers import ranking_metrics_of

        cfg, run, schema, tables = x.cfg, x.run, x.schema, x.tables
        holdout = self.holdout(cfg)
        if holdout is not None:
            built.summary["calibration"] = _calibrate(built.model, run, schema, tables, holdout)
            paths = TrainRunPaths(out)
            write_json_atomic(paths.calibration, built.summary["calibration"])
            # the published checkpoint is the published model's: best epoch, then calibration
            built.model.save_weights(str(paths.checkpoints / "best.weights"))
        valid = built.valid_loader
        if sharded or "validation_sample" in built.summary:
            valid = whole_split(
                make_loader(run.valid_dir, schema, tables, VALID_BATCH, shuffle=False)
            )
        metrics = {"ranking": ranking_metrics_of(built.model, valid, run)}
        built.model.save(str(TrainRunPaths(out).model), include_optimizer=False)
        return metrics


def _calibrate(
    model: Any, run: EtlRun, schema: Any, tables: Any, holdout: tuple[float, int]
) -> dict[str, Any]:
    """Platt-scale the model's output on the held-out train rows (models/calibration.py)."""
    from models.calibration import fit_platt, logit_of
    from models.layers import calibrated_output
    from models.metrics import auc, logloss
    from models.scoring import predict_ranking

    layer = calibrated_output(model)
    loader = make_loader(
        run.train_dir,
        schema,
        tables,
        VALID_BATCH,
        shuffle=False,
        holdout=holdout,
        held_out_rows=True,
    )
    labels, probs, _ = predict_ranking(model, whole_split(loader))
    logits = logit_of(probs)
    scale, shift = fit_platt(logits, labels)
    layer.scale.assign(scale)
    layer.shift.assign(shift)
    after = 1.0 / (1.0 + np.exp(-(scale * logits + shift)))
    return {
        "method": "platt",
        "fraction": holdout[0],
        "rows": int(labels.size),
        "scale": scale,
        "shift": shift,
        "logloss_before": logloss(labels, probs) if labels.size else None,
        "logloss_after": logloss(labels, after) if labels.size else None,
        # rows no epoch was fitted on and no decision was made on: where to compare settings
        "auc": auc(labels, probs) if labels.size and 0 < labels.mean() < 1 else None,
    }


def _retrieval_validation(model: Any, data: Any, hp: dict[str, Any], cfg: TrainConfig) -> Any:
    """A callback that adds recall@10 and ndcg@10 over all movies, on a fixed sample of valid
    users, to each epoch's logs (Keras has no retrieval validation of its own)."""
    import tensorflow as tf

    from models.towers import retrieval_metrics_of

    users = np.unique(data.valid.positives().users)
    if users.size > cfg.eval_users:
        rng = np.random.default_rng(cfg.seed)
        users = np.sort(rng.choice(users, cfg.eval_users, replace=False))

    class RetrievalValidation(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            m = retrieval_metrics_of(
                model.query_encoder,
                model.candidate_encoder,
                data,
                temperature=hp["temperature"],
                popularity_correction=cfg.popularity_correction,
                users=users,
                cold=False,
            )["all"]
            if logs is not None:
                logs["val_recall@10"] = m["recall@10"]
                logs["val_ndcg@10"] = m["ndcg@10"]

    return RetrievalValidation()


class Retrieval(Task):
    """Two-tower on (user, movie) interactions with in-batch negatives; recall@10 on valid users."""

    monitor = "val_recall@10"
    continuous = False
    with_label = False

    def defaults(self, train_rows: int) -> dict[str, Any]:
        small, large = _size(train_rows)
        return {
            "batch_size": 1024 if small else (8192 if large else 4096),
            "epochs": 30 if small else (3 if large else 8),
            "learning_rate": 3e-3,
            "embedding_dim": 64,
            "mlp": (128, 64),
            "dropout": 0.1,
            "l2_reg": 1e-5,
            "id_dropout": 0.0,
            "temperature": 0.1,
            # every train rating is a (user, movie) interaction, as EASE reads them: which movies
            # a user chose to rate predicts the liked ones better than the liked ones alone
            # (recall@10, ids only: ml-latest-small random 0.198 against 0.179, synthetic 0.296/0.287)
            "interactions": "all",
        }

    def positives_only(self, hp: dict[str, Any]) -> bool:
        return hp["interactions"] == "liked"

    def filtered_rows(self, cfg: TrainConfig, hp: dict[str, Any]) -> tuple[str, str]:
        if not self.positives_only(hp):
            return "", ""
        return "the liked rows", ": --interactions all (the default) reads every rating"

    def build(self, x: Inputs) -> Built:
        from models.towers import RetrievalData
        from models.two_tower import build_two_tower

        cfg, hp, run, schema, tables, stats = x.cfg, x.hp, x.run, x.schema, x.tables, x.stats
        model = build_two_tower(
            schema,
            embedding_dim=hp["embedding_dim"],
            tower_mlp=hp["mlp"],
            dropout=hp["dropout"],
            l2_reg=hp["l2_reg"],
            temperature=hp["temperature"],
            negatives=cfg.negatives,
            pretrained_stats=stats,
        )
        model.compile(optimizer=_adam(hp["learning_rate"]), metrics=[])
        data = RetrievalData(run, schema, tables)
        whole_split(data.user_loader), whole_split(data.item_loader)  # scored whole on every rank
        return Built(model, [_retrieval_validation(model, data, hp, cfg)], data=data)

    def publish(self, built: Built, x: Inputs, out: Path, sharded: bool) -> dict[str, Any]:
        from models.towers import retrieval_metrics_of

        cfg, hp = x.cfg, x.hp
        model, data = built.model, built.data
        metrics = {
            "retrieval": retrieval_metrics_of(
                model.query_encoder,
                model.candidate_encoder,
                data,
                temperature=hp["temperature"],
                popularity_correction=cfg.popularity_correction,
            )
        }
        paths = TrainRunPaths(out)
        model.save(str(paths.model), include_optimizer=False)
        model.query_encoder.save(str(paths.query_tower))
        model.candidate_encoder.save(str(paths.item_tower))
        np.save(paths.item_log_popularity, data.log_popularity)
        return metrics


TASKS: dict[str, Task] = {"dlrm": Ranking(), "two-tower": Retrieval()}
