"""What the deployment files are checked against: the code's commands, settings, servers, metrics.

The Dockerfile, ``docker-compose.yml``, ``deploy/kubernetes/``, ``deploy/prometheus/`` and
``deploy/grafana/`` name commands, flags, ports, paths, settings and metrics; the tests of those
files (``tests/unit/test_deploy_*.py``, ``tests/integration/test_deploy_*.py``) ask the code
itself through these helpers, so a name the code does not have fails a test.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from sqlalchemy import create_engine

from jwt_revocation.cli._table import build_parser
from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier, SidecarHTTPServer
from jwt_revocation.producer import SecurityEventReceiver
from jwt_revocation.producer.outbox import OutboxRelay, OutboxRelayHTTPServer
from jwt_revocation.shared import Event, PublishError, RevocationSettings, SecurityEventVerifier
from jwt_revocation.shared._http import BackgroundHTTPServer, parse_address

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"


def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# -- the Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of its line."""

    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (``CMD ["a", "b"]``)."""
        words = json.loads(self.arguments)
        assert isinstance(words, list), f"{self.keyword} is not in exec form: {self.arguments}"
        return [str(word) for word in words]


def dockerfile(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, continued lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def only(instructions: Sequence[Instruction], keyword: str) -> Instruction:
    """The one instruction with ``keyword`` (the last one, as Docker takes it)."""
    found = [i for i in instructions if i.keyword == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


def image_user() -> tuple[int, int]:
    """The Dockerfile's ``USER uid:gid``, which must be numeric."""
    user, _, group = only(dockerfile(), "USER").arguments.partition(":")
    assert user.isdigit(), f"USER is not a numeric uid: {user}"
    assert group.isdigit(), f"USER is not a numeric uid:gid: {user}:{group}"
    return int(user), int(group)


# -- the Kubernetes manifests ----------------------------------------------------------------

IMAGE = "jwt-revocation"
"""The image name the manifests use, which the kustomization's ``images`` points elsewhere."""


def kustomization_file() -> dict[str, Any]:
    """deploy/kubernetes/kustomization.yaml, parsed."""
    kustomization: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return kustomization


def kubernetes_objects() -> list[dict[str, Any]]:
    """What ``kustomize build deploy/kubernetes`` gives: the listed resources, in order, with
    the ``images`` replacements applied."""
    kustomization = kustomization_file()
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}
    objects = []
    for name in kustomization["resources"]:
        for document in yaml_documents(KUBERNETES / name):
            for container in containers(document):
                container["image"] = images.get(container["image"], container["image"])
            objects.append(document)
    return objects


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template's spec of a workload; None for other objects."""
    if document["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: dict[str, Any] = document["spec"]["template"]["spec"]
        return spec
    return None


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A workload's init containers and containers."""
    spec = pod_spec(document)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec["containers"]]


def image_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(workload, pod template, container) for every container of the image, as written."""
    found = False
    for name in kustomization_file()["resources"]:
        for document in yaml_documents(KUBERNETES / name):
            for container in containers(document):
                if container["image"] == IMAGE:
                    found = True
                    yield document, document["spec"]["template"], container
    assert found, f"no container of the {IMAGE} image"


def env_sources() -> dict[tuple[str, str], dict[str, str]]:
    """The data of each ConfigMap and Secret, by (kind, name)."""
    sources = {}
    for document in kubernetes_objects():
        if document["kind"] in ("ConfigMap", "Secret"):
            data = document.get("data", {}) | document.get("stringData", {})
            sources[document["kind"], document["metadata"]["name"]] = data
    return sources


def container_environment(container: dict[str, Any]) -> dict[str, str]:
    """The ``JWT_REVOCATION_*`` (and other) variables Kubernetes gives ``container``, as written
    (placeholders included): each ``envFrom`` source in order, then ``env``, whose entries win,
    with ``valueFrom`` read from the ConfigMap or Secret key it names."""
    sources = env_sources()
    given: dict[str, str] = {}
    for reference in container.get("envFrom", []):
        kind = "ConfigMap" if "configMapRef" in reference else "Secret"
        name = reference.get("configMapRef", reference.get("secretRef", {}))["name"]
        given |= sources[kind, name]
    for variable in container.get("env", []):
        if "value" in variable:
            given[variable["name"]] = variable["value"]
            continue
        source = variable["valueFrom"]
        kind = "ConfigMap" if "configMapKeyRef" in source else "Secret"
        key = source.get("configMapKeyRef", source.get("secretKeyRef", {}))
        given[variable["name"]] = sources[kind, key["name"]][key["key"]]
    return given


def effective_security(template: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """A container's security context with the pod's as defaults (``runAsUser`` etc.)."""
    pod: dict[str, Any] = template["spec"].get("securityContext", {})
    own: dict[str, Any] = container.get("securityContext", {})
    return pod | own


TMPFS_ROOT_MODE = 0o1777
"""The mode of a tmpfs's root mounted without ``mode=``, as the kubelet mounts an ``emptyDir``
of ``medium: Memory`` (``size=`` only): world-writable with the sticky bit (mount(8); seen here
by mounting one with ``-o size=8m``)."""


def volume_directories(template: dict[str, Any], root: Path) -> dict[str, Path]:
    """A directory under ``root`` standing for each volume of the pod template, with the mode
    the kubelet gives the volume's root: a memory ``emptyDir`` is a tmpfs (1777), another one
    a directory made 0777 (pkg/volume/emptydir: ``defaultPerm``), a claim a fresh file system's
    root (0755); with ``fsGroup`` the kubelet then adds group read, write and search and the
    set-group-id bit (``mode | 0660 | 0110 | setgid``; the group itself needs root here)."""
    fs_group = template["spec"].get("securityContext", {}).get("fsGroup") is not None
    directories = {}
    for volume in template["spec"].get("volumes", []):
        path = root / volume["name"]
        path.mkdir(parents=True)
        empty = volume.get("emptyDir")
        mode = 0o755 if empty is None else 0o777
        if empty is not None and empty.get("medium") == "Memory":
            mode = TMPFS_ROOT_MODE
        path.chmod(mode | (0o2770 if fs_group else 0))
        directories[volume["name"]] = path
    return directories


def on_volumes(container: dict[str, Any], value: str, directories: dict[str, Path]) -> str:
    """``value`` (a setting or an argument), moved to the directory standing for the volume
    (:func:`volume_directories`) when it is a path under one of the container's mounts."""
    for mount in container.get("volumeMounts", []):
        if value == mount["mountPath"] or value.startswith(mount["mountPath"] + "/"):
            return str(directories[mount["name"]]) + value[len(mount["mountPath"]) :]
    return value


@dataclass(frozen=True)
class SharedStatePod:
    """A pod whose image container is a host writer (``sidecar --shared-path``) and the
    containers that read its file (those given ``JWT_REVOCATION_SHARED_PATH``)."""

    workload: dict[str, Any]
    template: dict[str, Any]
    writer: dict[str, Any]
    args: argparse.Namespace
    readers: list[dict[str, Any]]


def shared_state_pods() -> list[SharedStatePod]:
    """Every pod of the manifests with a host writer; at least one."""
    pods = []
    for workload, template, container in image_containers():
        args = parse_command(container["args"])
        if command_name(args) == "sidecar" and args.shared_path is not None:
            readers = [
                other
                for other in containers(workload)
                if other is not container
                and "JWT_REVOCATION_SHARED_PATH" in container_environment(other)
            ]
            pods.append(SharedStatePod(workload, template, container, args, readers))
    assert pods, "no manifest runs jwt-revocation sidecar --shared-path"
    return pods


def environment_on_volumes(
    container: dict[str, Any], directories: dict[str, Path]
) -> dict[str, str]:
    """:func:`container_environment` with each path on a volume moved (:func:`on_volumes`)."""
    return {
        name: on_volumes(container, value, directories)
        for name, value in container_environment(container).items()
    }


# -- the command line -------------------------------------------------------------------------


def parse_command(words: Sequence[str]) -> argparse.Namespace:
    """The ``jwt-revocation`` command line ``words`` as the CLI parses it; a test failure,
    with argparse's message, for a command or flag the CLI does not have."""
    parser = build_parser(RevocationSettings())
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(list(words))
    except SystemExit:
        raise AssertionError(
            f"jwt-revocation {' '.join(words)}: {errors.getvalue().strip()}"
        ) from None


def command_name(args: argparse.Namespace) -> str:
    """The words that chose the command, e.g. ``sidecar`` or ``topic ensure``."""
    return " ".join(args.command_path)


def listen_address(args: argparse.Namespace) -> tuple[str, int]:
    """Where a parsed command serves HTTP (its ``--http``)."""
    assert args.http, f"jwt-revocation {command_name(args)} is given no --http"
    host, port = parse_address(args.http)
    assert host in ("127.0.0.1", "::1", "localhost") or args.http_allow_remote, (
        f"--http {args.http} needs --http-allow-remote"
    )
    return host, port


def setting_names() -> set[str]:
    """Every environment variable the package reads: one per setting, and the verification
    key's (``--key-env``'s default)."""
    names = {f"JWT_REVOCATION_{field.upper()}" for field in RevocationSettings.model_fields}
    return names | {parse_command(["sidecar"]).key_env}


# -- the servers the long-running commands start ----------------------------------------------

SERVING_COMMANDS = ("sidecar", "receive", "relay")
"""The commands that serve HTTP, each with the server class :func:`command_server` starts."""

SET_KEY = "k" * 32
"""The shared secret (HS256) the receiver of :func:`receiver_server` verifies SETs with."""


class KafkaDown:
    """A receiver's publisher while Kafka cannot be reached: every batch fails as a publish
    the broker did not acknowledge, so the receiver's relay backs off and keeps what is stored."""

    issuer = "auth"

    def publish_many(self, events: Iterable[Event]) -> None:
        raise PublishError("Kafka cannot be reached (a test's publisher)", retriable=True)


def receiver_server(tmp: Path) -> SecurityEventReceiver:
    """The server ``jwt-revocation receive --http`` runs, on a free loopback port, not started:
    SETs signed with :data:`SET_KEY` (HS256), stored in a SQLite file under ``tmp``, and a
    Kafka that cannot be reached (:class:`KafkaDown`)."""
    settings = RevocationSettings(set_verify_key=SecretStr(SET_KEY), set_algorithm="HS256")
    return SecurityEventReceiver(
        KafkaDown(),
        SecurityEventVerifier.from_settings(settings),
        max_token_lifetime="1h",
        store=tmp / "receiver" / "receiver.db",
        port=0,
    )


@contextlib.contextmanager
def command_server(command: str, tmp: Path) -> Iterator[tuple[str, int]]:
    """The HTTP server that ``jwt-revocation <command> --http`` runs, on a free loopback port
    with nothing behind it: a sidecar never started, a receiver with an empty store and no
    Kafka, a relay over an empty SQLite file. Yields its address."""
    server: BackgroundHTTPServer
    engine = None
    if command == "sidecar":
        sidecar = RevocationSidecar("127.0.0.1:9", max_token_lifetime="1h")
        verifier = RevocationVerifier(sidecar, key="k" * 32, algorithms=["HS256"])
        server = SidecarHTTPServer(sidecar, verifier, port=0)
    elif command == "receive":
        server = receiver_server(tmp)
    elif command == "relay":
        engine = create_engine(f"sqlite:///{tmp / 'outbox.db'}")
        server = OutboxRelayHTTPServer(OutboxRelay(engine, lambda events: None), port=0)
    else:
        raise AssertionError(f"jwt-revocation {command} serves no HTTP")
    server.start()
    try:
        yield server.address
    finally:
        server.stop()
        if engine is not None:
            # Closes the connection /metrics opened: Python 3.13 warns of an unclosed one.
            engine.dispose()


def status_of(address: tuple[str, int], path: str) -> int:
    """The HTTP status a GET of ``path`` gets."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


# -- PromQL -----------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_QUOTED = re.compile(r"\x00(\d+)\x00")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*|\{")
_MATCHER = re.compile(r"\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")\s*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})


@dataclass(frozen=True)
class Selector:
    """One series selector of an expression: the metric and its label matchers."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...]
    """(label, operator, value) of each matcher."""


def selectors(expr: str) -> list[Selector]:
    """Every series selector in a PromQL expression.

    A word that is neither a function or aggregation (followed by ``(``), a keyword, a label
    list (``by (...)``), a string nor a number is a metric name; a ``{...}`` right after it
    holds its matchers. A selector without a metric name (``{__name__=...}``) fails the test.
    """
    strings: list[str] = []

    def keep(match: re.Match[str]) -> str:
        strings.append(match.group())
        return f"\x00{len(strings) - 1}\x00"

    text = _STRING.sub(keep, expr)
    text = _LABEL_LISTS.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    found: list[Selector] = []
    position = 0
    while token := _TOKEN.search(text, position):
        position = token.end()
        word = token.group()
        assert word != "{", f"a selector without a metric name in {expr!r}"
        rest = text[position:].lstrip()
        if word.lower() in _KEYWORDS or rest.startswith("("):
            continue
        matchers: list[tuple[str, str, str]] = []
        if rest.startswith("{"):
            end = rest.find("}")
            assert end > 0, f"unclosed matchers in {expr!r}"
            position = len(text) - len(rest) + end + 1
            for quoted in filter(str.strip, rest[1:end].split(",")):
                part = _QUOTED.sub(lambda m: strings[int(m.group(1))], quoted)
                parsed = _MATCHER.fullmatch(part)
                assert parsed, f"not a label matcher: {part!r} in {expr!r}"
                label, operator, value = parsed.groups()
                matchers.append((label, operator, json.loads(value)))
        found.append(Selector(word, tuple(matchers)))
    return found
