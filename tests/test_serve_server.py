"""tritonserver lifecycle on a tiny python-backend model: start, ready, infer, stop, and failures.

These use a one-file numpy model, so the real server starts in seconds; the merlin ensemble is
served in tests/test_serve.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mmrec.errors import MmrecError
from models.serving.client import encode_rows
from models.serving.server import TritonServer, free_port

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "X", data_type: TYPE_FP32, dims: [ -1 ] }} ]
output [ {{ name: "Y", data_type: TYPE_FP32, dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
"""

ADD_ONE = """
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        {init}

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x + np.float32(1))]))
        return out
"""


def _repo(root: Path, name: str = "add_one", init: str = "pass") -> Path:
    model = root / name
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG.format(name=name))
    (model / "1" / "model.py").write_text(textwrap.dedent(ADD_ONE).replace("{init}", init))
    return root


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except OSError:
        return 0


@pytest.mark.slow
def test_server_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    server = TritonServer(repo, ready_model="add_one", startup_timeout_s=180)
    with server:
        assert server.host == "127.0.0.1" and server.is_ready()
        import tritonclient.http as http

        client = http.InferenceServerClient(server.http_url)
        x = np.arange(4, dtype=np.float32)
        inp = http.InferInput("X", [4], "FP32")
        inp.set_data_from_numpy(x)
        y = client.infer("add_one", [inp]).as_numpy("Y")
        np.testing.assert_array_equal(y, x + 1)
        client.close()
        url = f"http://{server.http_url}/v2/health/ready"
        proc = server.proc
    assert proc is not None and proc.returncode == 0  # SIGTERM: a clean shutdown, not a kill
    assert _get(url) == 0  # nothing listens any more


@pytest.mark.slow
def test_failed_model_load_reports_the_server_log(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", init="raise RuntimeError('broken model on purpose')")
    log = tmp_path / "server.log"
    server = TritonServer(repo, ready_model="add_one", startup_timeout_s=180, log_path=log)
    with pytest.raises(MmrecError) as err:
        server.start()
    assert "broken model on purpose" in str(err.value)  # the log tail is in the message
    assert server.proc is None


def test_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MmrecError, match="model repository not found"):
        TritonServer(tmp_path / "nope")


def test_repository_without_the_entry_model_is_a_clear_error(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    with pytest.raises(MmrecError, match=r"no model 'executor_model' \(found: add_one\)"):
        TritonServer(repo)


def test_startup_timeout_names_the_log(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    log = tmp_path / "server.log"
    server = TritonServer(repo, ready_model="add_one", startup_timeout_s=0.5, log_path=log)
    with pytest.raises(MmrecError, match="not ready after 0.5 s") as err:
        server.start()
    assert str(server.log_path) in str(err.value) and server.proc is None


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.slow
def test_cli_serve_prints_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", name="executor_model")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mmrec.cli",
            "serve",
            "--repository",
            str(repo),
            "--http-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)},  # its log
    )
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C or SIGTERM" in line:
                break
        out = "".join(lines)
        assert f"HTTP: http://127.0.0.1:{port}" in out, out
        assert _get(f"http://127.0.0.1:{port}/v2/models/executor_model/ready") == 200
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + rest
    assert "stopped (SIGTERM)" in rest
    assert _get(f"http://127.0.0.1:{port}/v2/health/ready") == 0


def test_encode_rows_flattens_lists_and_casts() -> None:
    inputs = {"userId": "INT32", "genres__values": "BYTES", "genres__offsets": "INT32"}
    rows = {"userId": [1, 2, 3], "genres": [["Drama", "Comedy"], [], ["Action"]]}
    t = encode_rows(rows, inputs)
    assert t["userId"].dtype == np.int32 and t["userId"].tolist() == [1, 2, 3]
    assert t["genres__values"].tolist() == [b"Drama", b"Comedy", b"Action"]
    assert t["genres__offsets"].tolist() == [0, 2, 2, 3]


def test_encode_rows_rejects_bad_rows() -> None:
    inputs = {"userId": "INT32", "genres__values": "BYTES", "genres__offsets": "INT32"}
    with pytest.raises(MmrecError, match=r"lack column\(s\) \['genres'\]"):
        encode_rows({"userId": [1]}, inputs)
    with pytest.raises(MmrecError, match="row 0: expected a list"):
        encode_rows({"userId": [1], "genres": ["Drama"]}, inputs)
    with pytest.raises(MmrecError, match="outside int32"):
        encode_rows({"userId": [2**40], "genres": [[]]}, inputs)
