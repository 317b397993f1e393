"""Every notebook executes headless, in order, on a tiny synthetic dataset, on its own kernel.

Notebooks 03-05 run on the features environment's Python (PyTorch), the rest on the pipeline
environment's (Merlin), as a person running them in Jupyter would. Kernel specs are written into
a temporary JUPYTER_PATH pointing at the two interpreters, so the test needs no registration step.
Later notebooks read what earlier ones wrote, so asking for one executes those before it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from mmrec.config import (
    EnrichConfig,
    EtlConfig,
    FeaturesConfig,
    SyntheticConfig,
    TrainConfig,
    opt_of,
    parse_pca,
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
PYTHONS = {
    "mmrec-pipeline": Path(sys.executable),
    "mmrec-features": REPO / ".venv-features" / "bin" / "python",
}
# (notebook, kernel it must declare, output types it must show when executed)
NOTEBOOKS = [
    ("00-Intro", "mmrec-pipeline", set()),
    ("01-Download-Convert", "mmrec-pipeline", {"image/png"}),
    ("02-Data-Enrichment", "mmrec-pipeline", {"image/png"}),
    ("03-Feature-Extraction-Poster", "mmrec-features", {"image/png"}),
    ("04-Feature-Extraction-Text", "mmrec-features", {"image/png"}),
    ("05-Create-Feature-Store", "mmrec-features", {"image/png"}),
    ("06-ETL-with-NVTabular", "mmrec-pipeline", set()),
    ("07-Training-with-Merlin-Models", "mmrec-pipeline", {"image/png"}),
    ("08-Serving-with-Triton", "mmrec-pipeline", set()),
]
PRESENT = [n for n in NOTEBOOKS if (NOTEBOOK_DIR / f"{n[0]}.ipynb").exists()]
CELL_TIMEOUT_S = 600


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name,kernel,_", PRESENT, ids=[n[0] for n in PRESENT])
def test_committed_notebook_is_clean(name: str, kernel: str, _: set) -> None:
    """Committed without outputs, valid, on its environment's kernel, with a papermill parameter cell."""
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == kernel
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{name}: code cells {dirty} have outputs; strip them before committing"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters'"
    assert "MMREC_NB_DATA_DIR" in tagged[0].source and "DATASET" in tagged[0].source


# Parameters that are a stage option: (config, field). Their default must be the config's, the
# choices listed in their comment the declared ones; None where the default is derived.
PARAMETER_FIELDS = {
    "SEED": (SyntheticConfig, "seed"),
    "LIMIT": (EnrichConfig, "limit"),
    "BATCH_SIZE": (FeaturesConfig, "batch_size"),
    "NUM_WORKERS": (FeaturesConfig, "num_workers"),
    "IMAGE_WEIGHTS": (FeaturesConfig, "image_weights"),
    "MAX_TEXT_TOKENS": (FeaturesConfig, "max_text_tokens"),
    "MODALITIES": (FeaturesConfig, "modalities"),
    "PCA": (FeaturesConfig, "pca"),
    "DEVICE": (EtlConfig, "device"),
    "SPLIT": (EtlConfig, "split"),
    "EMBEDDINGS": (EtlConfig, "embeddings"),
    "WORKERS": (EtlConfig, "workers"),
    "SCHEDULER": (EtlConfig, "scheduler"),
    "EPOCHS": (TrainConfig, "epochs"),
    "ETL_RUN": (TrainConfig, "etl_run"),
}
DERIVED = {"IMAGE_MODEL", "TEXT_MODEL", "RANDOM_INIT"}  # None: mmrec.config.content_defaults
# notebook-only settings (which dataset, what to show or compare), not a stage's option
NOTEBOOK_ONLY = {"DATASET", "DATA_DIR", "FORCE", "SIZE", "SOURCE", "MODELS", "ABLATION",
                 "SHUFFLED_CONTROL", "RUN", "BACKEND"}  # fmt: skip


def _parameters(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, str]:
    """The parameter cell's values with no MMREC_* override set, and its source."""
    for key in [k for k in os.environ if k.startswith("MMREC_")]:
        monkeypatch.delenv(key)
    source = next(c.source for c in _read(name).cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(source, namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}, source


@pytest.mark.parametrize("name", [n[0] for n in PRESENT])
def test_parameter_cell_matches_the_configs(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values, source = _parameters(name, monkeypatch)
    unknown = set(values) - set(PARAMETER_FIELDS) - DERIVED - NOTEBOOK_ONLY
    assert not unknown, f"{name}: map {sorted(unknown)} to a config field in this test"
    for param, value in values.items():
        if param in DERIVED:
            assert value is None, f"{name}: {param} should default to None (the dataset's default)"
        if param not in PARAMETER_FIELDS:
            continue
        cls, field = PARAMETER_FIELDS[param]
        default = getattr(cls(**_required(cls)), field)
        if field == "pca":
            value = parse_pca(value)
        assert (
            value == default
        ), f"{name}: {param} = {value!r}, {cls.__name__}.{field} = {default!r}"
        choices = opt_of(cls, field).choices
        line = next(ln for ln in source.splitlines() if ln.startswith(f"{param} ="))
        listed = re.findall(r'"([^"]+)"', line.partition("#")[2])
        if choices and listed:
            assert sorted(listed) == sorted(choices), f"{name}: {param}'s comment lists {listed}"
    models = values.get("MODELS", [])
    assert set(models) <= set(opt_of(TrainConfig, "model").choices)


def _required(cls: type) -> dict:
    return (
        {"dataset": "synthetic", "data_dir": Path("d")}
        if cls is not SyntheticConfig
        else {"data_dir": Path("d")}
    )


def test_every_notebook_of_the_series_exists() -> None:
    missing = [n[0] for n in NOTEBOOKS if n not in PRESENT]
    assert not missing, f"notebooks missing from {NOTEBOOK_DIR}: {missing}"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory):
    """A JUPYTER_PATH with both kernels, a data dir, and the tiny-size settings, for the module."""
    root = tmp_path_factory.mktemp("notebooks")
    for name, python in PYTHONS.items():
        spec_dir = root / "jupyter" / "kernels" / name
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": name,
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
    env = {
        "JUPYTER_PATH": str(root / "jupyter"),
        "MMREC_NB_DATA_DIR": str(root / "data"),
        "MMREC_NB_SIZE": "tiny",
        "MMREC_NB_DEVICE": "cpu",
        "MMREC_NB_IMAGE_MODEL": "efficientnet-lite0",  # real weights, shipped in a package
        "MMREC_NB_EPOCHS": "1",
        "MMREC_NB_MODELS": "dlrm",
        "MMREC_NB_ABLATION": "none;text,image",
        "MMREC_NB_CONTROL": "0",
        "MMREC_NB_PCA": "image=8,text=8",
        "MMREC_NO_PROGRESS": "1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield {"root": root, "executed": {}}


def _execute(name: str, kernel: str, state: dict) -> nbformat.NotebookNode:
    if name in state["executed"]:
        return state["executed"][name]
    if not PYTHONS[kernel].exists():
        pytest.fail(f"{name} needs the {kernel} interpreter at {PYTHONS[kernel]}; run `make setup`")
    # Earlier notebooks write what this one reads: run them first, once.
    for earlier, earlier_kernel, _ in NOTEBOOKS[: [n[0] for n in NOTEBOOKS].index(name)]:
        if earlier not in state["executed"] and (NOTEBOOK_DIR / f"{earlier}.ipynb").exists():
            _execute(earlier, earlier_kernel, state)
    nb = _read(name)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{name} failed:\n{exc}")
    state["executed"][name] = nb
    return nb


@pytest.mark.parametrize("name,kernel,must_show", PRESENT, ids=[n[0] for n in PRESENT])
def test_notebook_executes(name: str, kernel: str, must_show: set, kernel_env: dict) -> None:
    nb = _execute(name, kernel, kernel_env)
    shown = {
        mime
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        for mime in out.get("data", {})
    }
    assert must_show <= shown, f"{name} should show {must_show - shown}"
