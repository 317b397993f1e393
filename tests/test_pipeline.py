"""`mmrec run`: the plan per dataset kind, and a tiny end-to-end run that resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mmrec.config import RunConfig
from mmrec.pipeline import plan


def test_synthetic_plan_runs_every_stage_with_the_ablation() -> None:
    steps = plan(RunConfig(data_dir=Path("d")))
    names = [s.name for s in steps]
    assert names[:3] == ["data", "features", "etl"]
    assert names[-3:] == ["evaluate", "report", "export"]
    trains = [s.argv for s in steps if s.name.startswith("train")]
    controls = {(a[a.index("--model") + 1], a[a.index("--control") + 1]) for a in trains}
    assert controls == {
        ("dlrm", "none"),
        ("dlrm", "constant"),
        ("dlrm", "shuffled"),
        ("two-tower", "none"),
    }
    etl = next(s for s in steps if s.name == "etl").argv
    assert etl[etl.index("--split") + 1] == "cold-items"


def test_seeds_add_train_steps_and_keep_the_first_seed_unchanged() -> None:
    one = plan(RunConfig(data_dir=Path("d")))
    three = plan(RunConfig(data_dir=Path("d"), seeds=3))
    trains_one = [s for s in one if s.name.startswith("train")]
    trains_three = [s for s in three if s.name.startswith("train")]
    assert len(trains_three) == 3 * len(trains_one)
    # seed 42 keeps its step name and argv, so a finished single-seed run is reused
    assert set(trains_one) <= set(trains_three)
    extra = [s for s in trains_three if s not in trains_one]
    for step in extra:
        seed = step.argv[step.argv.index("--seed") + 1]
        assert seed in ("43", "44")
        assert step.argv[step.argv.index("--run-name") + 1].endswith(f".seed{seed}")


def test_movielens_plan_downloads_and_enriches_only_with_a_source() -> None:
    plain = plan(RunConfig(data_dir=Path("d"), dataset="ml-latest-small"))
    assert plain[0].argv[:3] == ("data", "download", "ml-latest-small")
    assert "enrich" not in [s.name for s in plain]
    features = next(s for s in plain if s.name == "features").argv
    assert features[features.index("--modalities") + 1] == "text"
    enriched = plan(RunConfig(data_dir=Path("d"), dataset="ml-25m", source="tmdb"))
    assert [s.name for s in enriched][:3] == ["data", "enrich", "features"]


def test_tiny_run_end_to_end_then_resumes(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "mmrec.cli", "run", "--data-dir", str(tmp_path),
        "--users", "80", "--movies", "60", "--ratings", "3000", "--seed", "3",
    ]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((tmp_path / "synthetic" / "run_summary.json").read_text())
    assert summary["row_counts"]["ratings"] == 3000
    assert Path(summary["outputs"]["report"]).exists()
    assert (tmp_path / "synthetic" / "export").is_dir()
    aucs = [v for k, v in summary["headline"].items() if ".dlrm." in k and k.endswith("auc")]
    assert len(aucs) == 4 and all(0.0 <= v["all"] <= 1.0 and "cold" in v for v in aucs)
    assert "headline" in summary and "rows:" in first.stdout

    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    n_steps = len(summary["step_seconds"])
    assert second.stderr.count("done earlier, skipped") == n_steps
