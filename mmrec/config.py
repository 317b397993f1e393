"""Typed configuration for every stage, in one place.

The CLI fills these from its flags and hands them to the stages' entry points; notebooks and
tests build them directly. Defaults here are the project's defaults: change them here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class DownloadConfig:
    """`mmrec data download`: fetch a GroupLens archive and convert it to typed Parquet."""

    variant: str
    data_dir: Path
    base_url: str = GROUPLENS_BASE_URL
    checksum: str | None = None  # "md5:HEX" or "sha256:HEX"; None: the published .md5
    force: bool = False
    timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 1.0
    chunk_rows: int = 2_000_000  # rows per Parquet row group written when converting
    max_member_bytes: int = 8 << 30  # refuse archive members larger than this when extracting
    max_total_bytes: int = 24 << 30  # refuse to extract more than this in all


@dataclass(frozen=True)
class SyntheticConfig:
    """`mmrec data synthetic`: a MovieLens-format dataset with posters, synopses and a planted signal."""

    data_dir: Path
    name: str = "synthetic"
    users: int = 2_000
    movies: int = 1_000
    ratings: int = 100_000
    seed: int = 0
    n_factors: int = 8  # hidden latent factors per movie and user
    n_topics: int = 8  # latent topics driving genres, poster style and synopsis words
    missing_poster_rate: float = 0.1
    missing_synopsis_rate: float = 0.1
    corrupt_poster_rate: float = 0.02
    rating_noise: float = 0.6  # std of the noise added to the latent rating score
    content_noise: float = 0.5  # how much posters and synopses stray from the latent factors
    poster_size: tuple[int, int] = (96, 144)  # width, height
    posters: bool = True  # False: ratings only (large benchmark datasets)
    force: bool = False


@dataclass(frozen=True)
class EnrichConfig:
    """`mmrec enrich`: posters and synopses for a real MovieLens dataset."""

    dataset: str
    data_dir: Path
    source: str = "tmdb"  # tmdb | imdb | local
    tmdb_base_url: str = "https://api.themoviedb.org/3"
    tmdb_image_base_url: str = "https://image.tmdb.org/t/p"
    poster_size: str = "w342"
    local_images: Path | None = None
    local_texts: Path | None = None
    key: str = "movieId"  # movieId | imdbId | tmdbId, for the local source
    text_column: str = "text"
    concurrency: int = 8
    rate_per_s: float = 30.0
    timeout_s: float = 20.0
    retries: int = 5  # attempts per request, the first included
    backoff_s: float = 0.5  # first retry delay, doubled per attempt (429 waits Retry-After)
    limit: int | None = None
    max_image_bytes: int = 20 << 20
    max_image_pixels: int = 40_000_000
    force: bool = False


@dataclass(frozen=True)
class FeaturesConfig:
    """`mmrec features`: per-movie embeddings from posters and synopses, then the feature store."""

    dataset: str
    data_dir: Path
    modalities: tuple[str, ...] = ("image", "text")
    image_model: str = "resnet50"
    image_weights: Path | None = None
    text_model: str = "facebook/bart-large"
    random_init: tuple[str, ...] = ()  # modalities built with random seeded weights (tests, demos)
    batch_size: int = 32
    num_workers: int = 2
    device: str = "auto"  # auto | cpu | cuda
    shard_size: int = 1_024
    max_text_tokens: int | None = None
    pca: dict[str, int] = field(default_factory=dict)  # modality -> output dimension
    seed: int = 0  # random-init weights and anything else random: same seed, same bytes on CPU
    max_tags: int = 20  # most frequent tags used in a fallback text
    force: bool = False


@dataclass(frozen=True)
class RunConfig:
    """`mmrec run`: the whole pipeline, stage after stage, on one dataset.

    The defaults are the demo's: small, fast models that still show what content is worth on the
    synthetic data (cold-items split, PCA-reduced vectors, an ablation with both controls).
    """

    data_dir: Path
    dataset: str = "synthetic"
    source: str | None = None  # enrich source for real MovieLens: tmdb | imdb | local
    enrich_args: tuple[str, ...] = ()  # extra `mmrec enrich` flags (e.g. --images DIR --texts F)
    synthetic: SyntheticConfig | None = None  # sizes of the generated default
    split: str | None = None  # default: cold-items on synthetic data, random on MovieLens
    embeddings: str = "lookup"  # join | lookup
    image_model: str | None = None  # default: resnet18 (random-init) on synthetic, resnet50 else
    text_model: str | None = None  # default: minilm on synthetic, facebook/bart-large else
    random_init: tuple[str, ...] | None = None  # default: ("image",) on synthetic, () else
    pca: str = "image=16,text=16"  # per-modality PCA in the store ("" keeps full vectors)
    export: bool = True
    force: bool = False


@dataclass(frozen=True)
class EtlConfig:
    """`mmrec etl`: split the ratings, fit the NVTabular workflow on train, write model inputs."""

    dataset: str
    data_dir: Path
    run_name: str | None = None  # default "<split>-<embeddings>"
    split: str = "random"  # random | temporal | cold-items
    valid_fraction: float = 0.2  # random split, temporal global cut, warm rows of cold-items
    temporal_mode: str = "global"  # global (one timestamp cut) | leave-last-out (per user)
    cold_fraction: float = 0.1  # cold-items: share of rated movies held out of train entirely
    seed: int = 42
    embeddings: str = "lookup"  # lookup | join | none
    modalities: tuple[str, ...] | None = None  # None: every modality in the feature store
    rating_threshold: float = 3.0  # rating_binary = rating > threshold
    keep_rating: bool = True  # keep the raw rating as a regression target
    count_features: bool = False  # log-normalised user and item interaction counts (train only)
    target_encoding: bool = False  # k-fold target encoding of userId and movieId (train only)
    target_encoding_folds: int = 5
    device: str = "auto"  # auto | cpu | gpu
    workers: int = 0  # local Dask worker processes; 0: single process, synchronous scheduler
    scheduler: str | None = None  # address of an existing Dask scheduler
    part_size: str = "256MB"  # NVTabular partition size
    batch_rows: int = 2_000_000  # rows per streamed batch when validating and splitting
    force: bool = False


@dataclass(frozen=True)
class ExportConfig:
    """`mmrec export`: a trained model behind its fitted workflow as a Triton model repository."""

    dataset: str
    data_dir: Path
    run: str | None = None  # training run under <root>/runs/
    etl_run: str | None = None  # None: the one the run names, else the only one under <root>/etl/
    model: str = "auto"  # auto | dlrm | two-tower
    model_dir: Path | None = None  # a SavedModel directory instead of the run's
    etl_dir: Path | None = None  # an ETL output directory instead of <root>/etl/<etl_run>
    movies: Path | None = None  # two-tower item catalogue; default <root>/movies.parquet
    backend: str = "tensorflow"  # tensorflow (Merlin image) | python (python-backend-only Triton)
    out: Path | None = None  # default <root>/export/<run>
    max_batch_size: int = 1024  # larger requests get a Triton error
    force: bool = False


@dataclass(frozen=True)
class ServeConfig:
    """`mmrec serve`: a real tritonserver on an exported repository until Ctrl-C / SIGTERM."""

    repository: Path  # a Triton model repository (`<export>/triton`)
    host: str = "127.0.0.1"
    http_port: int = 0  # 0: a free port
    grpc_port: int = 0  # 0: a free port
    tritonserver: Path | None = None  # None: `tritonserver` on PATH, else nvidia-pytriton's bundle
    cache_dir: Path | None = None  # where the bundled binary layout is prepared
    startup_timeout_s: float = 180.0
    log_verbose: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """`mmrec train`: a DLRM or two-tower model on an ETL run, with early stopping on valid.

    None means "the default for this dataset's size" (models.train.defaults_for).
    """

    dataset: str
    data_dir: Path
    model: str = "dlrm"  # dlrm | two-tower
    modalities: tuple[str, ...] = ()  # () = ids only; ("text",), ("image",), ("text", "image")
    control: str = "none"  # none | constant | shuffled (ablation of the pretrained vectors)
    etl_run: str | None = None  # None: the only run under <root>/etl/
    run_name: str | None = None  # None: "<etl-run>.<model>.<modalities>.<control>"
    batch_size: int | None = None
    epochs: int | None = None  # upper bound; early stopping usually ends sooner
    learning_rate: float | None = None
    embedding_dim: int | None = None
    mlp: tuple[int, ...] | None = None  # DLRM top MLP / two-tower tower MLP
    dropout: float | None = None
    l2_reg: float | None = None  # per-batch L2 on looked-up embedding rows
    bias: bool = True  # DLRM: per-user and per-movie bias embeddings (dim 1) into the output
    id_dropout: float | None = None  # share of train rows whose movieId becomes out-of-vocabulary
    negatives: str = "in-batch"  # two-tower: in-batch (sampled softmax needs id-only towers)
    temperature: float | None = None  # two-tower logits temperature
    popularity_correction: bool = True  # two-tower: add log(train count) when retrieving
    interactions: str | None = None  # two-tower training rows: liked (label 1) | all ratings
    patience: int = 3  # epochs without a better validation metric before stopping
    eval_users: int = 2_000  # two-tower early stopping: recall@10 on this many valid users
    seed: int = 42
    mixed_precision: str = "auto"  # auto (on with a GPU) | on | off
    force: bool = False


@dataclass(frozen=True)
class EvaluateConfig:
    """`mmrec evaluate`: metrics of trained runs beside baselines on the same split."""

    dataset: str
    data_dir: Path
    runs: tuple[str, ...] = ()  # () = every finished run under <root>/runs/
    etl_run: str | None = None  # only runs trained on this ETL run
    baseline_strength: float = 5.0  # pseudo-ratings pulling per-user/movie rates to the mean
    force: bool = False


@dataclass(frozen=True)
class ReportConfig:
    """`mmrec report`: a markdown table and PNG plots from the evaluation JSON."""

    dataset: str
    data_dir: Path
    out: Path | None = None  # default <root>/report/
    force: bool = False
