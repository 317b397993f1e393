"""`mmrec run`: the plan per dataset kind, and a tiny end-to-end run that resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

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


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process, from /proc."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        out[int(d.name)] = (int(ppid), state, cmdline)
    return out


def _descendants(pid: int) -> dict[int, str]:
    procs = _processes()
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, cmdline) in procs.items():
            if ppid == parent and child not in found:
                found[child] = cmdline
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    info = _processes().get(pid)
    return info is not None and info[1] not in ("Z", "X")  # a zombie has stopped running


def _drain(stream, into: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(iter(stream.readline, "")), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_run_stage_stops_the_child_and_its_children(signum: int) -> None:
    """run_stage's child and the process that child started both end with the parent."""
    sleeper = "import time; time.sleep(300)"
    child = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {sleeper!r}]); time.sleep(300)"
    driver = f"import sys; from mmrec.pipeline import run_stage; run_stage([sys.executable, '-c', {child!r}])"
    proc = subprocess.Popen([sys.executable, "-c", driver], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    tree: dict[int, str] = {}
    while time.monotonic() < deadline and len(tree) < 2:
        tree = _descendants(proc.pid)
        time.sleep(0.05)
    assert len(tree) == 2, f"expected a child and a grandchild, got {tree}"
    t0 = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 30  # the sleepers did not run out their 300 s
    assert "KeyboardInterrupt" in err  # the parent ends as interrupted, once the group is gone
    time.sleep(0.2)
    assert not [pid for pid in tree if _running(pid)]


def test_tiny_run_sigterm_stops_the_stage_then_resumes(tmp_path: Path) -> None:
    """SIGTERM during the features stage ends the stage (and its features-env child) too; the
    next run resumes after the finished data step, completes, and a third run is a no-op."""
    cmd = [
        sys.executable, "-m", "mmrec.cli", "run", "--data-dir", str(tmp_path),
        "--users", "80", "--movies", "60", "--ratings", "3000", "--seed", "3",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    _drain(proc.stdout, [])
    _drain(proc.stderr, err)
    stage: dict[int, str] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        stage = _descendants(proc.pid)
        if any(".venv-features" in c and "features" in c for c in stage.values()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "mmrec run ended before its features stage was seen:\n" + "".join(
        err
    )
    assert any(".venv-features" in c for c in stage.values()), f"no features child: {stage}"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130, "".join(err)
    time.sleep(0.5)
    left = {pid: c for pid, c in stage.items() if _running(pid)}
    assert not left, f"still running after mmrec run was stopped: {left}"
    assert "interrupted; rerun the same command to resume" in "".join(err)
    state = json.loads((tmp_path / "synthetic" / "run_state.json").read_text())
    assert list(state["steps"]) == ["data"]

    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("done earlier, skipped") == 1  # the data step, finished before
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
