"""A real tritonserver process on 127.0.0.1: start, wait until ready, stop cleanly.

Two binaries are supported. In the Merlin image `tritonserver` is on PATH with its tensorflow
and python backends and needs nothing else. Elsewhere nvidia-pytriton's wheel bundles a Triton
2.51 build with only the python backend; it runs once its backend folder holds the python stub
built for this interpreter (prepared once in a cache folder) and the stub can load this
interpreter's own libpython, which is why the python lib dir leads LD_LIBRARY_PATH and the venv's
bin leads PATH (the stub finds its site-packages through the `python3` it sees first).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrec.config import FREE_PORT, SERVE_HOST, TRITON_STARTUP_TIMEOUT_S, ServeConfig
from mmrec.contracts import ENTRY_MODEL
from mmrec.errors import MmrecError
from mmrec.io import atomic_dir

LOG_TAIL_LINES = 60


@dataclass
class Binary:
    """How to launch one tritonserver build: the executable, its extra flags and environment."""

    path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    bundled: bool = False


def find_binary(explicit: Path | None = None, cache_dir: Path | None = None) -> Binary:
    """An explicit binary, else a system `tritonserver`, else nvidia-pytriton's bundled one."""
    if explicit is not None:
        if not Path(explicit).exists():
            raise MmrecError(f"tritonserver not found: {explicit}")
        return Binary(Path(explicit))
    system = shutil.which("tritonserver")
    if system:
        return Binary(Path(system))
    return prepare_bundled(cache_dir)


def prepare_bundled(cache_dir: Path | None = None) -> Binary:
    """Lay out nvidia-pytriton's server so its python backend uses this interpreter."""
    try:
        import pytriton
    except ImportError as exc:
        raise MmrecError(
            "no tritonserver on PATH and nvidia-pytriton is not installed "
            "(pip install nvidia-pytriton==0.7.0, or run in the Merlin image)"
        ) from exc
    bundle = Path(pytriton.__file__).parent / "tritonserver"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = bundle / "python_backend_stubs" / py / "triton_python_backend_stub"
    binary = bundle / "bin" / "tritonserver"
    for path in (binary, stub, bundle / "backends" / "python" / "libtriton_python.so"):
        if not path.exists():
            raise MmrecError(f"nvidia-pytriton's bundle lacks {path} (Python {py} unsupported?)")
    version = getattr(pytriton, "__version__", "unknown")
    cache = Path(cache_dir) if cache_dir else _default_cache() / f"pytriton-{version}-py{py}"
    backends = cache / "backends"
    if not (backends / "python" / "triton_python_backend_stub").exists():
        with atomic_dir(backends) as tmp:
            shutil.copytree(bundle / "backends" / "python", tmp / "python", dirs_exist_ok=True)
            shutil.copy2(stub, tmp / "python" / "triton_python_backend_stub")
    libs = [sysconfig.get_config_var("LIBDIR"), str(bundle.parent.parent / "nvidia_pytriton.libs")]
    env = {
        "LD_LIBRARY_PATH": os.pathsep.join(
            [p for p in [*libs, os.environ.get("LD_LIBRARY_PATH", "")] if p]
        ),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    args = [f"--backend-directory={backends}", f"--cache-directory={bundle / 'caches'}"]
    return Binary(binary, args=args, env=env, bundled=True)


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmrec" / "tritonserver"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TritonServer:
    """One tritonserver process. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        repository: str | os.PathLike[str],
        *,
        host: str = SERVE_HOST,
        http_port: int = FREE_PORT,
        grpc_port: int = FREE_PORT,
        binary: Binary | None = None,
        startup_timeout_s: float = TRITON_STARTUP_TIMEOUT_S,
        log_path: str | os.PathLike[str] | None = None,
        log_verbose: int = 0,
        ready_model: str | None = ENTRY_MODEL,
        exit_timeout_s: int = 30,
    ) -> None:
        self.repository = Path(repository)
        if not self.repository.is_dir():
            raise MmrecError(f"model repository not found: {self.repository}")
        self.host = host
        self._ports = (http_port, grpc_port)
        self.binary = binary or find_binary()
        self.startup_timeout_s = startup_timeout_s
        self.log_verbose = log_verbose
        if ready_model and not (self.repository / ready_model).is_dir():
            found = ", ".join(sorted(p.name for p in self.repository.iterdir() if p.is_dir()))
            raise MmrecError(
                f"{self.repository} has no model {ready_model!r} (found: {found or 'none'}); "
                "is it the triton/ folder of an `mmrec export`?"
            )
        self.ready_model = ready_model
        # On SIGTERM Triton waits this long for in-flight requests and open client connections.
        self.exit_timeout_s = int(exit_timeout_s)
        self._own_log = log_path is None
        self.log_path = (
            Path(log_path)
            if log_path
            else Path(tempfile.mkstemp(prefix="tritonserver-", suffix=".log")[1])
        )
        self.http_port = 0
        self.grpc_port = 0
        self.abort_start = False  # set from a signal handler to give up waiting for readiness
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def start(self) -> TritonServer:
        """Launch and wait until the server and the entry model are ready, or fail with the log."""
        attempts = 1 if all(self._ports) else 3  # a picked free port can be taken meanwhile
        for attempt in range(attempts):
            self.http_port = self._ports[0] or free_port(self.host)
            self.grpc_port = self._ports[1] or free_port(self.host)
            self._launch()
            try:
                self._wait_ready()
                return self
            except KeyboardInterrupt:
                self.stop()
                raise
            except MmrecError:
                log = self.log_tail()
                self.stop()
                if attempt + 1 < attempts and "already in use" in log:
                    continue
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        cmd = [
            str(self.binary.path),
            f"--model-repository={self.repository}",
            *self.binary.args,
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=false",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=false",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
        ]
        env = {**os.environ, **self.binary.env}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # our Ctrl-C reaches it only through stop()
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        if self.ready_model:
            model_url = f"http://{self.http_url}/v2/models/{self.ready_model}/ready"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise MmrecError(
                    f"tritonserver exited with code {self.proc.returncode} while starting on "
                    f"{self.repository}; its log ({self.log_path}):\n{self.log_tail()}"
                )
            if _http_ok(url) and (not self.ready_model or _http_ok(model_url)):
                return
            if self.abort_start:
                raise KeyboardInterrupt("stopped while tritonserver was starting")
            time.sleep(0.25)
        raise MmrecError(
            f"tritonserver not ready after {self.startup_timeout_s:g} s on {self.repository}; "
            f"its log ({self.log_path}):\n{self.log_tail()}"
        )

    def is_ready(self) -> bool:
        return (
            self.proc is not None
            and self.proc.poll() is None
            and _http_ok(f"http://{self.http_url}/v2/health/ready")
        )

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (Triton drains in-flight requests and unloads models), then SIGKILL."""
        timeout_s = timeout_s if timeout_s is not None else self.exit_timeout_s + 30.0
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                # The python stubs are in the server's session: take the whole group down.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        return proc.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        if self._own_log and exc[0] is None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve(cfg: ServeConfig, on_ready: Any = None) -> dict[str, Any]:
    """Run tritonserver on the repository until SIGINT/SIGTERM; return how it went.

    `on_ready(server)` is called once the entry model is ready (the CLI prints the URLs there).
    """
    binary = find_binary(cfg.tritonserver, cfg.cache_dir)
    server = TritonServer(
        cfg.repository,
        host=cfg.host,
        http_port=cfg.http_port,
        grpc_port=cfg.grpc_port,
        binary=binary,
        startup_timeout_s=cfg.startup_timeout_s,
        log_verbose=cfg.log_verbose,
    )
    stop = {"signal": None}

    def _on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = signal.Signals(signum).name
        server.abort_start = True

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.monotonic()
    try:
        server.start()
        ready_s = time.monotonic() - t0
        if on_ready is not None:
            on_ready(server)
        while stop["signal"] is None:
            if server.proc is None or server.proc.poll() is not None:
                code = server.proc.returncode if server.proc else None
                raise MmrecError(f"tritonserver exited with code {code}:\n{server.log_tail()}")
            time.sleep(0.2)
        code = server.stop()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return {
        "http": server.http_url,
        "grpc": server.grpc_url,
        "binary": str(binary.path),
        "bundled": binary.bundled,
        "ready_s": round(ready_s, 2),
        "stopped_by": stop["signal"],
        "exit_code": code,
        "log": str(server.log_path),
    }
