"""`mmrec serve`: a real tritonserver on an exported repository, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse

from mmrec.commands import data_dir_of, stage_command
from mmrec.config import ServeConfig
from mmrec.options import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = stage_command(
        sub,
        "serve",
        ServeConfig,
        _serve,
        force=False,
        help="serve an exported repository with tritonserver on 127.0.0.1",
        description="Uses `tritonserver` from PATH (the Merlin image) or the one bundled in "
        "nvidia-pytriton (python backend only: export with --backend python). Waits until the "
        "models are ready, prints the HTTP and gRPC URLs, stops cleanly on Ctrl-C / SIGTERM.",
        example_lines=(
            "mmrec serve --run dlrm",
            "mmrec serve --repository data/synthetic/export/dlrm/triton --http-port 8000",
            "curl -s 127.0.0.1:8000/v2/health/ready -o /dev/null -w '%{http_code}\\n'",
        ),
    )
    p.add_argument("--dataset", default="synthetic", help="with --run: <dataset>/export/<run>")
    p.add_argument("--run", default=None, help="exported run name")


def _serve(args: argparse.Namespace) -> int:
    from mmrec.errors import MmrecError
    from mmrec.paths import DatasetPaths
    from models.serving.server import serve

    repository = args.repository
    if repository is None:
        if not args.run:
            raise MmrecError("give --repository DIR or --run NAME (an export under <dataset>)")
        repository = DatasetPaths.of(data_dir_of(args), args.dataset).export / args.run / "triton"
    cfg = config_from(ServeConfig, args, repository=repository)

    def ready(server) -> None:
        print(f"serving {repository}", flush=True)
        print(f"  HTTP: http://{server.http_url}  (POST /v2/models/executor_model/infer)")
        print(f"  gRPC: {server.grpc_url}")
        print(f"  log:  {server.log_path}")
        print("Ctrl-C or SIGTERM stops it.", flush=True)

    summary = serve(cfg, on_ready=ready)
    print(f"stopped ({summary['stopped_by']}), tritonserver exit code {summary['exit_code']}")
    return 0
