"""Where the ETL computes: one process, a local Dask cluster, a LocalCUDACluster, or a scheduler.

One code path for CPU and GPU: the choice only sets `cpu=` on merlin Datasets and picks the
cluster class; NVTabular dispatches pandas/cuDF itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from mmrec.errors import MmrecError

DEVICES = ("auto", "cpu", "gpu")


def gpu_available() -> bool:
    """True when cuDF imports and sees a GPU (Merlin's own check)."""
    try:
        from merlin.core.compat import cudf, device_mem_size

        return cudf is not None and device_mem_size(kind="total") > 0
    except Exception:
        return False


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise MmrecError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    if device == "gpu" and not gpu_available():
        raise MmrecError("--device gpu: no GPU with cuDF found (use --device cpu or auto)")
    return device


@dataclass
class Compute:
    device: str  # cpu | gpu
    client: object | None  # distributed.Client or None (single process)
    description: str

    @property
    def cpu(self) -> bool:
        return self.device == "cpu"


@contextlib.contextmanager
def compute_context(
    device: str, workers: int = 0, scheduler: str | None = None
) -> Iterator[Compute]:
    """Yield the compute setup; clusters we start are closed on exit.

    workers=0 and no scheduler: a single process with dask's synchronous scheduler, which on
    2 cores beats threads (pandas holds the GIL) and processes (serialisation) alike.
    """
    import dask

    dev = resolve_device(device)
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise MmrecError(f"cannot reach Dask scheduler {scheduler}: {exc}") from exc
        try:
            yield Compute(dev, client, f"scheduler {scheduler}")
        finally:
            client.close()
        return
    if workers and workers > 0:
        from distributed import Client

        if dev == "gpu":
            from dask_cuda import LocalCUDACluster

            cluster = LocalCUDACluster(n_workers=workers)
            desc = f"LocalCUDACluster({workers} GPUs)"
        else:
            from distributed import LocalCluster

            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            desc = f"LocalCluster({workers} worker processes)"
        client = Client(cluster)
        try:
            yield Compute(dev, client, desc)
        finally:
            client.close()
            cluster.close()
        return
    with dask.config.set(scheduler="synchronous"):
        yield Compute(dev, None, "single process (synchronous)")
