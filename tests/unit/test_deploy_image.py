"""The Dockerfile and docker-compose.yml, checked without a Docker engine.

The build context is simulated: the repository's files less what ``.dockerignore`` excludes,
copied as the Dockerfile's ``COPY`` lines say. From it the tests check what ``pip install`` in
the image needs (every package folder ``pyproject.toml`` maps, its readme, the constraints),
and against the code what the image and the compose file name: the entry command and its
flags, the health check's path, the exposed and published ports, the settings.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import posixpath
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from jwt_revocation.cli._table import leaves
from jwt_revocation.consumer import SidecarHTTPServer
from jwt_revocation.producer import ReceiverOptions
from jwt_revocation.producer.outbox import OutboxRelayHTTPServer
from tests.deploy import (
    ROOT,
    Instruction,
    command_name,
    command_server,
    dockerfile,
    image_user,
    listen_address,
    only,
    parse_command,
    pyproject,
    setting_names,
    status_of,
)

# -- the build context ------------------------------------------------------------------------


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    """``.dockerignore`` matching: ``*`` within one segment, ``**`` across any number."""
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return (
        bool(path)
        and fnmatch.fnmatchcase(path[0], pattern[0])
        and _segments_match(pattern[1:], path[1:])
    )


def dockerignore(path: Path = ROOT / ".dockerignore") -> Callable[[str], bool]:
    """Whether ``.dockerignore`` excludes a path of the context (a file or a folder): one of
    its patterns matches the path or a folder above it."""
    patterns = [
        line.strip().strip("/").split("/")
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not any(p[0].startswith("!") for p in patterns), "exceptions (!) are not simulated"

    def excluded(relative: str) -> bool:
        parts = relative.split("/")
        return any(
            _segments_match(pattern, parts[:depth])
            for pattern in patterns
            for depth in range(1, len(parts) + 1)
        )

    return excluded


def build_context() -> set[str]:
    """The files ``docker build .`` sends: every file under the root that is not excluded."""
    excluded = dockerignore()
    files: set[str] = set()
    for folder, dirs, names in os.walk(ROOT):
        relative = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else relative + "/"
        dirs[:] = [d for d in dirs if not excluded(prefix + d)]
        files.update(prefix + n for n in names if not excluded(prefix + n))
    return files


def image_files(instructions: list[Instruction], context: set[str]) -> dict[str, str]:
    """Each file the ``COPY`` lines put into the image, by its absolute path in the image,
    with the context file it came from. Only the plain ``COPY src... dest`` form is used."""
    workdir = "/"
    files: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, instruction.arguments)
        if instruction.keyword in ("ADD", "COPY"):
            words = instruction.arguments.split()
            assert instruction.keyword == "COPY", instruction
            assert not words[0].startswith("--"), instruction
            *sources, destination = words
            target = posixpath.normpath(posixpath.join(workdir, destination))
            into = destination.endswith("/") or len(sources) > 1
            for source in map(posixpath.normpath, sources):
                copied = {f for f in context if f == source or f.startswith(source + "/")}
                assert copied, f"COPY {source}: not in the build context (see .dockerignore)"
                for file in copied:
                    if file == source:
                        name = posixpath.join(target, posixpath.basename(file)) if into else target
                    else:
                        name = posixpath.join(target, file[len(source) + 1 :])
                    files[name] = file
    return files


def _workdir_at(instructions: list[Instruction], stop: Instruction) -> str:
    workdir = "/"
    for instruction in instructions:
        if instruction is stop:
            return workdir
        if instruction.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, instruction.arguments)
    raise AssertionError(f"{stop} is not in the Dockerfile")


def _pip_install(instructions: list[Instruction]) -> tuple[Instruction, list[str]]:
    runs = [i for i in instructions if i.keyword == "RUN" and "pip install" in i.arguments]
    assert len(runs) == 1, "the Dockerfile installs the package with one RUN pip install"
    return runs[0], shlex.split(runs[0].arguments)


def _package_folder(package: str, package_dir: dict[str, str]) -> str:
    """The folder setuptools reads ``package`` from (its longest mapped parent)."""
    for name in sorted(package_dir, key=len, reverse=True):
        if package == name or package.startswith(name + "."):
            rest = package[len(name) :].lstrip(".").replace(".", "/")
            return posixpath.join(package_dir[name], rest) if rest else package_dir[name]
    return package.replace(".", "/")


def test_the_simulated_context_and_copy_are_faithful(tmp_path: Path) -> None:
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("# comment\n.venv\n**/__pycache__\ndocs/*.md\n")
    excluded = dockerignore(ignore)
    assert excluded(".venv")
    assert excluded(".venv/bin/python")
    assert excluded("cli/__pycache__/x.pyc")
    assert excluded("__pycache__/x.pyc")
    assert excluded("docs/a.md")
    assert not excluded("docs/a.txt")
    assert not excluded("docs/sub/a.md")
    assert not excluded("venv")
    assert not excluded("cli/_main.py")
    context = {"a.toml", "pkg/__init__.py", "pkg/sub/x.py"}
    copied = image_files(
        [
            Instruction("WORKDIR", "/app"),
            Instruction("COPY", "a.toml ./"),
            Instruction("COPY", "pkg src/pkg"),
        ],
        context,
    )
    assert set(copied) == {"/app/a.toml", "/app/src/pkg/__init__.py", "/app/src/pkg/sub/x.py"}
    with pytest.raises(AssertionError, match="not in the build context"):
        image_files([Instruction("COPY", "missing missing")], context)


def test_the_image_has_every_package_folder_pyproject_maps() -> None:
    instructions = dockerfile()
    files = image_files(instructions, build_context())
    run, _ = _pip_install(instructions)
    project = _workdir_at(instructions, run)
    setuptools = pyproject()["tool"]["setuptools"]
    missing = [
        package
        for package in setuptools["packages"]
        if posixpath.join(
            project, _package_folder(package, setuptools["package-dir"]), "__init__.py"
        )
        not in files
    ]
    assert missing == [], f"pip install . in the image would fail: no folder for {missing}"
    assert posixpath.join(project, pyproject()["project"]["readme"]) in files
    # Every folder mapped is copied whole: what it holds in the repository, the image holds.
    for folder in setuptools["package-dir"].values():
        tracked = {f for f in build_context() if f.startswith(folder + "/")}
        assert {posixpath.join(project, f) for f in tracked} <= set(files), folder


def test_the_image_installs_the_pinned_versions_and_the_relay_extra() -> None:
    instructions = dockerfile()
    run, words = _pip_install(instructions)
    files = image_files(instructions, build_context())
    project = _workdir_at(instructions, run)
    flags = [i for i, word in enumerate(words) if word in ("-c", "--constraint")]
    assert flags, "pip install in the image ignores constraints.txt"
    constraints = words[flags[0] + 1]
    assert files[posixpath.join(project, constraints)] == "constraints.txt"
    targets = [w for w in words if w == "." or w.startswith(".[")]
    assert len(targets) == 1, "the image installs the project folder itself"
    extras = set(re.findall(r"[\w-]+", targets[0][1:]))
    assert "outbox" in extras, "jwt-revocation relay needs the outbox extra"
    assert extras <= set(pyproject()["project"]["optional-dependencies"])


def _env(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                name, _, value = pair.partition("=")
                values[name] = value
    return values


def test_output_is_unbuffered_and_the_user_is_numeric_and_not_root() -> None:
    assert _env(dockerfile()).get("PYTHONUNBUFFERED") == "1"
    uid, gid = image_user()
    assert uid != 0
    assert gid != 0


def _default_command() -> list[str]:
    instructions = dockerfile()
    entrypoint = only(instructions, "ENTRYPOINT").exec_form()
    assert entrypoint == ["jwt-revocation"]
    assert entrypoint[0] in pyproject()["project"]["scripts"]
    return only(instructions, "CMD").exec_form()


def _server_ports() -> set[int]:
    return {
        inspect.signature(SidecarHTTPServer.__init__).parameters["port"].default,
        ReceiverOptions.model_fields["port"].default,  # the receiver's settings live there
        inspect.signature(OutboxRelayHTTPServer.__init__).parameters["port"].default,
    }


def test_the_default_command_is_the_http_sidecar_on_an_exposed_port() -> None:
    args = parse_command(_default_command())
    assert command_name(args) == "sidecar"
    _, port = listen_address(args)
    exposed = {int(p) for p in only(dockerfile(), "EXPOSE").arguments.split()}
    assert exposed == _server_ports()
    assert port in exposed


def _health_check() -> tuple[list[str], int, str]:
    """The health check's command, and the port and path its URL names."""
    options, _, command = only(dockerfile(), "HEALTHCHECK").arguments.partition("CMD ")
    assert "--start-period" in options, "a sidecar needs time to replay before it is healthy"
    words = Instruction("CMD", command).exec_form()
    assert words[:2] == ["python", "-c"], "a slim image has python, not curl"
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", words[2])
    assert url, words[2]
    return words, int(url.group(1)), url.group(2)


def test_the_health_check_asks_the_sidecars_readiness(tmp_path: Path) -> None:
    words, port, path = _health_check()
    assert port == listen_address(parse_command(_default_command()))[1]
    with command_server("sidecar", tmp_path) as address:
        assert status_of(address, path) == 503, "/readyz of a sidecar that cannot decide yet"
        here = f"{address[0]}:{address[1]}"

        def check(on: str) -> int:
            code = words[2].replace(f"127.0.0.1:{port}{path}", f"{here}{on}")
            return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode

        assert check(path) != 0, "unhealthy while the sidecar cannot decide"
        assert check("/healthz") == 0, "the same check passes on a 200"


# -- docker-compose.yml -----------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def _commands() -> dict[str, list[str]]:
    """The jwt-revocation arguments of each service built from the Dockerfile."""
    services = _compose()
    built = {name: s for name, s in services.items() if s.get("build") == "."}
    assert built, "docker-compose.yml runs the image"
    return {name: s.get("command", _default_command()) for name, s in built.items()}


def test_compose_runs_only_commands_the_cli_has() -> None:
    long_running = {" ".join(path) for path, command in leaves() if command.long_running}
    services = _compose()
    for name, words in _commands().items():
        args = parse_command(words)
        waited_for = [
            s
            for s in services.values()
            if s.get("depends_on", {}).get(name, {}).get("condition")
            == "service_completed_successfully"
        ]
        if waited_for:
            assert command_name(args) not in long_running, f"{name} must end for others to start"


def test_compose_names_only_services_and_ports_that_exist() -> None:
    services = _compose()
    health_port = _health_check()[1]
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on an unknown service {dependency}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
                assert not services[dependency]["healthcheck"].get("disable"), dependency
    for name, words in _commands().items():
        args = parse_command(words)
        serves = getattr(args, "http", None)
        port = listen_address(args)[1] if serves else None
        check = services[name].get("healthcheck", {})
        if port != health_port or command_name(args) != "sidecar":
            assert check.get("disable") or "test" in check, (
                f"{name}: the image's health check asks a sidecar on {health_port}"
            )
        for published in services[name].get("ports", []):
            host, _, container = published.rpartition(":")
            assert host.startswith("127.0.0.1:"), f"{name} publishes beyond loopback"
            assert int(container) == port, f"{name} listens on {port}, not {container}"


def test_compose_settings_exist_and_name_its_services() -> None:
    services = _compose()
    listeners = services["kafka"]["environment"]["KAFKA_LISTENERS"]
    kafka_ports = {int(p) for p in re.findall(r"://[\w.-]*:(\d+)", listeners)}
    known = setting_names()
    for name in _commands():
        environment = services[name].get("environment", {})
        unknown = set(environment) - known
        assert not unknown, f"{name}: no such setting {sorted(unknown)}"
        for server in environment.get("JWT_REVOCATION_BOOTSTRAP_SERVERS", "").split(","):
            host, port = server.rsplit(":", 1)
            assert host == "kafka", f"{name}: {server}"
            assert int(port) in kafka_ports, f"{name}: {server}"
