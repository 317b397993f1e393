"""The console: known-harmless noise silenced at its source, real warnings kept, -v shows all,
and each command's output also in <dataset>/logs/<stage>.log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmrec.cli import main

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    from mmrec import console
    with console.session("probe", None, sys.argv[1] == "verbose"):
        import tensorflow as tf
        print("sum", int(tf.constant(1) + 1))
        warnings.warn("Initializing an NVTabular Dataset in CPU mode.This is an experimental "
                      "feature with extremely limited support!")
        tf.get_logger().warning("a tensorflow notice")
        warnings.warn("a real warning")
    """
)


def _probe(mode: str) -> tuple[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MMREC_VERBOSE")
    }
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.mark.slow
def test_quiet_by_default_everything_with_verbose() -> None:
    pytest.importorskip("tensorflow")
    out, err = _probe("quiet")
    assert out.strip() == "sum 2"
    assert "a real warning" in err  # real warnings still reach the console
    assert "CPU mode" not in err and "a tensorflow notice" not in err
    assert "oneDNN" not in err and "cpu_feature_guard" not in err
    _, loud = _probe("verbose")
    assert "CPU mode" in loud and "a tensorflow notice" in loud and "a real warning" in loud
    assert len(loud.splitlines()) > len(err.splitlines())


def test_a_command_logs_to_its_dataset_and_restores_the_streams(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MMREC_NO_PROGRESS", "1")
    stdout = sys.stdout
    argv = ["data", "synthetic", "--users", "20", "--movies", "12", "--ratings", "150"]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 0
    assert sys.stdout is stdout
    shown = capsys.readouterr().out
    log = (tmp_path / "synthetic" / "logs" / "data.log").read_text()
    result = next(line for line in shown.splitlines() if line.startswith("synthetic: done"))
    assert result in log and "==== mmrec" in log
    # the dataset folder was created by the stage itself (its log was held until then), so a
    # second run sees a finished dataset, not a foreign non-empty folder
    assert main([*argv, "--data-dir", str(tmp_path)]) == 0
    assert (tmp_path / "synthetic" / "logs" / "data.log").read_text().count("==== mmrec") == 2
    assert main(["etl", "--dataset", "absent", "--data-dir", str(tmp_path)]) == 2
    assert not (tmp_path / "absent").exists()  # no log folder conjured for a missing dataset


FD2_SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys
    from pathlib import Path
    from mmrec import console
    log = Path(sys.argv[1])
    with console.session("probe", log, False):
        os.write(2, b"native: straight to fd 2\\n")  # as TensorFlow's C++ logging writes
        print("python: through sys.stderr", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'child: own fd 2\\\\n')"],
                       stderr=console.child_stderr(), check=True)
    os.write(2, b"after: the session is over\\n")
    """
)


def test_native_writes_to_fd2_reach_the_console_and_the_log_once(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "probe.log"
    tmp_path.joinpath("logs").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", FD2_SCRIPT, str(log)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    for line in ("native: straight to fd 2", "python: through sys.stderr"):
        assert done.stderr.count(line) == 1, done.stderr
        assert text.count(line) == 1, text
    # a process it starts for a stage gets the real stderr: shown, and left to its own log
    assert done.stderr.count("child: own fd 2") == 1 and "child" not in text
    assert done.stderr.count("after: the session is over") == 1 and "after" not in text
