"""Options declared once on the configs: the CLI they derive is the CLI main had, plus additions."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest
from cli_snapshot import FLAGS_FILE, PLANS_FILE, flags_snapshot, leaf_parsers, plans_snapshot

from mmrec import cli
from mmrec.commands import features as features_cmd
from mmrec.config import (
    DEVICES,
    RUN_PASS_THROUGH,
    STAGE_CONFIGS,
    EnrichConfig,
    EtlConfig,
    FeaturesConfig,
    RunConfig,
    TrainConfig,
    content_defaults,
    opt_of,
    parse_ints,
    parse_list,
    parse_pca,
)
from mmrec.errors import MmrecError
from mmrec.options import _kinds, argv_of, config_from, option_fields
from mmrec.pipeline import plan

# What this change meant to change in main's flags: flag -> the fields that differ, as they are now.
INTENDED = {
    # one device vocabulary; `cuda` is still accepted and read as gpu
    ("features", "--device"): {"choices": sorted(DEVICES)},
    # unset: the dataset's defaults (content_defaults), no longer ResNet-50/BART on synthetic data
    ("features", "--image-model"): {"default": None},
    ("features", "--text-model"): {"default": None},
    ("features", "--random-init"): {"default": None},
}
ADDED = {("run", flag) for flag in RUN_PASS_THROUGH} | {
    # issue 12: seeds, and the intervals and strong baselines of evaluate
    ("train", "--seeds"),
    ("run", "--seeds"),
    ("evaluate", "--bootstrap-samples"),
    ("evaluate", "--bootstrap-seed"),
    ("evaluate", "--no-strong-baselines"),
    ("evaluate", "--ease-max-items"),
    # issue 14: equal files for N ranks, the learning-rate warm-up under Horovod
    ("etl", "--partitions"),
    ("train", "--lr-warmup-epochs"),
    # issue 12: two-tower trains on every rating by default; the DLRM's calibration slice
    ("train", "--interactions"),
    ("train", "--calibration-fraction"),
    # issue 15: early stopping on a fixed sample of many validation rows
    ("train", "--valid-sample-rows"),
    # issue 15: the pipeline at a chosen size and modality set (benchmarks/bench_pipeline.py)
    ("run", "--modalities"),
}
# issue 13: -v/--verbose and --offline on every command (mmrec/console.py)
ADDED |= {(cmd, flag) for cmd in json.loads(FLAGS_FILE.read_text()) for flag in ("-v", "--offline")}


def _rows(snapshot: dict) -> dict[tuple[str, str], dict]:
    return {(cmd, row["flags"][0]): row for cmd, rows in snapshot.items() for row in rows}


def test_every_flag_is_the_one_main_had() -> None:
    main = _rows(json.loads(FLAGS_FILE.read_text()))
    now = _rows(flags_snapshot())
    assert set(main) <= set(now), f"flags gone: {sorted(set(main) - set(now))}"
    assert set(now) - set(main) == ADDED
    for key, row in main.items():
        expected = {**row, **INTENDED.get(key, {})}
        assert now[key] == expected, f"mmrec {key[0]} {key[1]} changed"


def test_run_plans_are_main_s() -> None:
    """The demo's and MovieLens' steps run with exactly main's argv, so journals still match,
    except the one intended change: the demo embeds posters with the real EfficientNet-Lite0
    (issue 13) instead of a random-init ResNet-18."""
    main = json.loads(PLANS_FILE.read_text())
    features = next(step for step in main["synthetic"] if step[0] == "features")
    at = features.index("--image-model")
    features[at : at + 4] = ["--image-model", "efficientnet-lite0"]  # and no --random-init
    assert plans_snapshot() == main


def _parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


@pytest.mark.parametrize("cls", sorted(set(STAGE_CONFIGS.values()), key=lambda c: c.__name__))
def test_flags_give_back_the_config(cls: type) -> None:
    """argv_of(cfg) parsed by the command's own parser builds the same config (every option)."""
    command = next(name for name, c in STAGE_CONFIGS.items() if c is cls)
    names = option_fields(cls)
    base = {"dataset": "ml-1m", "variant": "ml-1m", "repository": Path("repo")}
    cfg = cls(**{k: v for k, v in base.items() if k in names}, **_data_dir(cls))
    # every option away from its default, so a flag that is not passed on shows
    changed = {name: _other(cls, name, getattr(cfg, name)) for name in names}
    cfg = dataclasses.replace(cfg, **changed)
    argv = [*command.split(), *argv_of(cls, {n: getattr(cfg, n) for n in names})]
    if "data_dir" in cls.__dataclass_fields__:
        argv += ["--data-dir", "d"]
    args = _parse(*argv)
    if cls is TrainConfig:
        from models.inputs import parse_modalities

        back = config_from(cls, args, modalities=parse_modalities(args.modalities))
    else:
        back = config_from(cls, args)
    assert back == cfg


def _data_dir(cls: type) -> dict:
    return {"data_dir": Path("d")} if "data_dir" in cls.__dataclass_fields__ else {}


def _other(cls: type, name: str, value):
    """A valid value of the option that is not `value`."""
    choices = opt_of(cls, name).choices
    if choices:
        return next(c for c in choices if c != value)
    if name == "variant":
        return "ml-100k"
    return {
        "bool": lambda: not value,
        "int": lambda: (value or 0) + 3,
        "float": lambda: (value or 0) + 0.25,
        "path": lambda: Path(f"/x/{name}"),
        "str": lambda: f"x-{name}",
        "list": lambda: ("image",) if value == ("text",) else ("text",),
        "ints": lambda: (64, 32),
        "pca": lambda: {"text": 3},
    }[_kinds(cls)[name]]()


def test_features_defaults_follow_the_dataset() -> None:
    """`mmrec features --dataset synthetic` with no flags gets what `mmrec run` passes it."""
    synthetic = features_cmd._config(_parse("features", "--dataset", "synthetic"))
    assert (synthetic.image_model, synthetic.text_model) == ("efficientnet-lite0", "minilm")
    assert synthetic.random_init == ()
    run_features = next(s.argv for s in plan(RunConfig(data_dir=Path("d"))) if s.name == "features")
    assert run_features[run_features.index("--image-model") + 1] == synthetic.image_model
    assert run_features[run_features.index("--text-model") + 1] == synthetic.text_model
    real = features_cmd._config(_parse("features", "--dataset", "ml-25m"))
    assert (real.image_model, real.text_model, real.random_init) == (
        "resnet50",
        "facebook/bart-large",
        (),
    )
    assert content_defaults("ml-25m")["image_model"] == FeaturesConfig.image_model  # one literal
    none = features_cmd._config(_parse("features", "--dataset", "synthetic", "--random-init="))
    assert none.random_init == ()
    every = features_cmd._config(_parse("features", "--dataset", "ml-1m", "--random-init"))
    assert every.random_init == ("image", "text")


def test_features_reexec_argv_rebuilds_the_same_config() -> None:
    args = _parse(
        "features", "--dataset", "synthetic", "--data-dir", "d", "--pca", "image=4",
        "--device", "cuda", "--image-weights", "w.pth", "--force",
    )  # fmt: skip
    cfg = features_cmd._config(args)
    assert cfg.device == "gpu"  # the deprecated alias
    argv = features_cmd._argv(cfg)
    assert argv[0] == "features" and "--force" in argv
    again = features_cmd._config(_parse(*argv))
    assert again == cfg
    # an explicit empty value survives the round trip instead of falling back to the default
    cfg = features_cmd._config(_parse("features", "--dataset", "synthetic", "--random-init="))
    assert features_cmd._config(_parse(*features_cmd._argv(cfg))).random_init == ()


def test_run_passes_stage_options_to_their_stage_only(tmp_path: Path) -> None:
    args = _parse(
        "run", "--dataset", "ml-1m", "--source", "local", "--images", "posters",
        "--texts", "plots.csv", "--key", "imdbId", "--text-column", "overview",
        "--device", "cpu", "--features-batch-size", "8", "--valid-fraction", "0.3",
        "--etl-seed", "7", "--epochs", "2", "--train-seed", "5", "--data-dir", str(tmp_path),
    )  # fmt: skip
    from mmrec.commands.run import _stage_options

    cfg = config_from(RunConfig, args, stage_options=_stage_options(args))
    steps = {s.name: s.argv for s in plan(cfg)}
    enrich = config_from(EnrichConfig, _parse(*steps["enrich"]))
    assert (enrich.source, enrich.local_images, enrich.local_texts) == (
        "local",
        Path("posters"),
        Path("plots.csv"),
    )
    assert (enrich.key, enrich.text_column) == ("imdbId", "overview")
    features = features_cmd._config(_parse(*steps["features"]))
    assert (features.device, features.batch_size) == ("cpu", 8)
    etl = config_from(EtlConfig, _parse(*steps["etl"]))
    assert (etl.device, etl.valid_fraction, etl.seed, etl.split) == ("cpu", 0.3, 7, "random")
    trains = [argv for name, argv in steps.items() if name.startswith("train")]
    assert len(trains) == 6
    for argv in trains:
        train = config_from(TrainConfig, _parse(*argv), modalities=())
        assert (train.epochs, train.seed) == (2, 5)
    for name in ("data", "evaluate", "report", "export"):
        assert "--epochs" not in steps[name] and "--device" not in steps[name]


def test_run_rejects_enrich_options_without_an_enrich_step() -> None:
    args = _parse("run", "--images", "posters")
    from mmrec.commands.run import _stage_options

    cfg = config_from(RunConfig, args, stage_options=_stage_options(args))
    with pytest.raises(MmrecError, match="need real MovieLens and --source"):
        plan(cfg)


def test_one_parser_per_kind_of_option_text() -> None:
    assert parse_list(" image, ,text ") == ("image", "text")
    assert parse_ints("64, 32") == (64, 32)
    assert parse_pca("image=64, text=32") == {"image": 64, "text": 32}
    assert parse_pca("") == {}
    with pytest.raises(ValueError, match="expected MODALITY=DIM"):
        parse_pca("image")
    with pytest.raises(ValueError, match="comma-separated integers"):
        parse_ints("64,x")
    with pytest.raises(MmrecError, match="--mlp: expected comma-separated integers"):
        config_from(TrainConfig, _parse("train", "--dataset", "x", "--mlp", "1,b"), modalities=())


# the guides' option tables and the command each describes
GUIDE_TABLES = {
    "guide-data.md": "data synthetic",
    "guide-etl.md": "etl",
    "guide-features.md": "features",
    "guide-serving.md": "export",
}
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _option_rows(text: str) -> list[tuple[list[str], str]]:
    """(flags, default cell) of each row of the `| option | default | meaning |` tables."""
    rows, inside = [], False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| option | default |"):
            inside = True
        elif not line.startswith("|"):
            inside = False
        elif inside and not set(cells[0]) <= set("- "):
            rows.append((re.findall(r"`(--[a-z0-9-]+)", cells[0]), cells[1]))
    return rows


def _literal(text: str):
    """A default cell part that states a value: a number or one `backticked` token; else None."""
    text = text.strip()
    if re.fullmatch(r"-?[\d,]*\.?\d+", text):
        return float(text.replace(",", ""))
    m = re.fullmatch(r"`([^`]*)`", text)
    return m.group(1) if m else None


@pytest.mark.parametrize("guide,command", sorted(GUIDE_TABLES.items()))
def test_guide_option_tables_match_the_parser(guide: str, command: str) -> None:
    """Each flag a guide's table names exists, and every default it states is the parser's."""
    parser = leaf_parsers(cli.build_parser())[command]
    actions = {s: a for a in parser._actions for s in a.option_strings}
    rows = _option_rows((DOCS / guide).read_text())
    assert rows, f"{guide}: no option table found"
    for flags, default in rows:
        missing = [f for f in flags if f not in actions]
        assert not missing, f"{guide}: mmrec {command} has no {missing}"
        parts = re.split(r" / |, (?![^`]*`)", default) if len(flags) > 1 else [default]
        if len(parts) != len(flags):
            assert not any(_literal(p) is not None for p in parts), f"{guide}: {flags} {default}"
            continue
        for flag, part in zip(flags, parts, strict=False):
            stated, actual = _literal(part), actions[flag].default
            if stated is None:
                continue
            if isinstance(stated, float):
                assert (
                    isinstance(actual, (int, float)) and float(actual) == stated
                ), f"{guide}: {flag} default {part} but the parser's is {actual!r}"
            else:
                assert str(actual) == stated, f"{guide}: {flag} default {part}, parser {actual!r}"
