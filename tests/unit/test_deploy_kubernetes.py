"""deploy/kubernetes/, checked against the Kubernetes schemas and against the code.

The kustomization is rendered as kustomize would (it uses only ``resources`` and ``images``)
and every object is validated with kubernetes-validate's strict schemas, for the oldest
Kubernetes the manifests need (native sidecars: 1.29) and the newest it ships. Then each
container of the image: its arguments parse as a command the CLI has, it listens on the port
it declares, every probe and the metrics annotation ask a path that command's server answers,
every setting it is given (or a comment names) is one the package reads, it runs as the image's
non-root user, and its resources hold the measured sizes. The receiver's store: a SQLite file on
a claim, which the store accepts as the kubelet lays the volume out, for one replica; its
readiness stays 200 while Kafka is down, and it still takes revocations then.
"""

from __future__ import annotations

import copy
import re
import stat
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest

import jwt_revocation
from jwt_revocation.producer import ReceiverStore
from jwt_revocation.producer.outbox import outbox_engine
from jwt_revocation.shared import ConfigurationError, SecurityEventSigner, UserDeleted
from tests.deploy import (
    IMAGE,
    KUBERNETES,
    SERVING_COMMANDS,
    SET_KEY,
    command_name,
    command_server,
    containers,
    dockerfile,
    env_sources,
    image_containers,
    image_user,
    kubernetes_objects,
    kustomization_file,
    listen_address,
    only,
    parse_command,
    receiver_server,
    setting_names,
    status_of,
)
from tests.support import post, wait_for

MINIMUM = "1.29"
"""Native sidecars (an init container with ``restartPolicy: Always``) are on by default from
Kubernetes 1.29."""

SIDECAR_RSS = 74e6
"""Bytes of RSS of ``jwt-revocation sidecar --http`` with an empty state (measured here:
73.8 MB after 80 s idle; BENCHMARKS.md row 12 has 70 MB for a sidecar without HTTP)."""
BYTES_PER_ENTRY = 126
"""RSS per live revocation (README, Sizing; BENCHMARKS.md row 3)."""
RECEIVER_RSS = 96.5e6
"""Bytes of RSS of ``jwt-revocation receive`` with a SQLite store, idle (measured here: 94,232
kB after 80 s, its relay polling the store)."""
STORE_SETTING = "JWT_REVOCATION_RECEIVER_STORE"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def test_the_kustomization_lists_every_manifest_and_only_what_is_rendered() -> None:
    kustomization = kustomization_file()
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images"}, (
        "kubernetes_objects() simulates resources and images only"
    )
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert [i["name"] for i in kustomization["images"]] == [IMAGE]
    assert kustomization["images"][0]["newTag"] == jwt_revocation.__version__


@pytest.mark.parametrize("version", [MINIMUM, kubernetes_validate.latest_version()])
def test_every_object_is_valid_kubernetes(version: str) -> None:
    objects = kubernetes_objects()
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "ConfigMap", "Secret"}
    for document in objects:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validation_refuses_a_misspelt_field() -> None:
    deployment = next(o for o in kubernetes_objects() if o["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    container = containers(broken)[0]
    container["readinessProbe"]["httpGet"]["paht"] = container["readinessProbe"]["httpGet"].pop(
        "path"
    )
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def _port(container: dict[str, Any], port: int | str) -> int:
    """A container port given by number or by name."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert named, f"{container['name']} has no port named {port}"
    return int(named[0])


def test_each_container_runs_a_command_the_cli_has_on_the_port_it_declares() -> None:
    entrypoint = only(dockerfile(), "ENTRYPOINT").exec_form()
    for workload, _, container in image_containers():
        assert "command" not in container, "the image's entry point is jwt-revocation"
        assert entrypoint == ["jwt-revocation"]
        args = parse_command(container["args"])
        assert command_name(args) in SERVING_COMMANDS, workload["metadata"]["name"]
        host, port = listen_address(args)
        assert host == "0.0.0.0", "the kubelet's probes come to the pod's address"
        assert [p["containerPort"] for p in container["ports"]] == [port]
        if container in workload["spec"]["template"]["spec"].get("initContainers", []):
            # Without it the pod waits for the init container to exit before the app starts.
            assert container["restartPolicy"] == "Always", "a native sidecar keeps running"


def test_every_probe_and_the_metrics_annotation_ask_a_path_the_command_serves(
    tmp_path: Path,
) -> None:
    asked: dict[str, set[str]] = {}
    for _, template, container in image_containers():
        command = command_name(parse_command(container["args"]))
        port = container["ports"][0]["containerPort"]
        paths = asked.setdefault(command, set())
        for probe in PROBES:
            if probe in container:
                get = container[probe]["httpGet"]
                assert _port(container, get["port"]) == port, (container["name"], probe)
                paths.add(get["path"])
        assert "livenessProbe" in container, container["name"]
        assert "readinessProbe" in container, container["name"]
        annotations = template["metadata"].get("annotations", {})
        assert annotations["prometheus.io/port"] == str(port)
        paths.add(annotations["prometheus.io/path"])
    assert set(asked) == set(SERVING_COMMANDS), "a sidecar, a receiver and a relay"
    for command, paths in asked.items():
        with command_server(command, tmp_path) as address:
            for path in sorted(paths):
                assert status_of(address, path) != 404, f"jwt-revocation {command} serves no {path}"


def test_every_setting_given_is_one_the_package_reads() -> None:
    known = setting_names()
    sources = env_sources()
    for _, _, container in image_containers():
        names = {variable["name"] for variable in container.get("env", [])}
        for reference in container["envFrom"]:
            kind = "ConfigMap" if "configMapRef" in reference else "Secret"
            name = reference.get("configMapRef", reference.get("secretRef", {}))["name"]
            assert (kind, name) in sources, f"{container['name']}: no {kind} {name}"
            names |= set(sources[kind, name])
        unknown = names - known
        assert not unknown, f"{container['name']}: the package reads no {sorted(unknown)}"
    for document in kubernetes_objects():
        for container in containers(document):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["key"] in sources["Secret", reference["name"]], variable


def test_every_setting_a_manifest_names_even_in_a_comment_is_one_the_package_reads() -> None:
    known = setting_names()
    for path in sorted(KUBERNETES.glob("*.yaml")):
        unknown = set(re.findall(r"\bJWT_REVOCATION_[A-Z0-9_]+", path.read_text())) - known
        assert not unknown, f"{path.name}: the package reads no {sorted(unknown)}"


def _receiver() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(workload, pod template, container) of the receiver."""
    (found,) = [
        found
        for found in image_containers()
        if command_name(parse_command(found[2]["args"])) == "receive"
    ]
    return found


def _store_on_volume(container: dict[str, Any]) -> tuple[PurePosixPath, dict[str, Any]]:
    """The receiver's SQLite store (its file path) and the volume mount it lies under."""
    given = {v["name"]: v.get("value") for v in container["env"]}
    assert given.get(STORE_SETTING), "the default store is on the read-only root file system"
    store = PurePosixPath(given[STORE_SETTING])
    assert store.is_absolute(), f"{STORE_SETTING} is a file here, not a URL: {store}"
    mounts = [m for m in container["volumeMounts"] if store.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1, f"the store {store} is on no volume, or on several"
    return store, mounts[0]


def test_the_receivers_sqlite_store_is_on_a_claim_of_its_one_replica() -> None:
    workload, template, container = _receiver()
    store, mount = _store_on_volume(container)
    # One receiver per file (a second one is refused the file's lock): one replica, and the
    # old pod gone before the new one opens the file.
    assert workload["spec"]["replicas"] == 1
    assert workload["spec"]["strategy"] == {"type": "Recreate"}
    assert not mount.get("readOnly", False)
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == mount["name"]]
    claims = {
        o["metadata"]["name"]: o
        for o in kubernetes_objects()
        if o["kind"] == "PersistentVolumeClaim"
    }
    claim = claims[volume["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The volume's root is the pod's group's and group-writable (fsGroup), which the store
    # refuses: its file is in a directory below, which the receiver creates 0700.
    assert store.parent != PurePosixPath(mount["mountPath"])
    pod = template["spec"]["securityContext"]
    assert pod["fsGroup"] == image_user()[1]
    assert pod["fsGroupChangePolicy"] == "OnRootMismatch"


def test_the_receivers_store_for_several_replicas_is_a_database_url_it_takes() -> None:
    """The alternative secrets.yaml has commented out, in the receiver's Secret."""
    documents = (KUBERNETES / "secrets.yaml").read_text().split("\n---\n")
    (receiver,) = [d for d in documents if "name: jwt-revocation-receiver\n" in d]
    (url,) = re.findall(rf"^\s*#\s*{STORE_SETTING}:\s*(\S+)$", receiver, re.MULTILINE)
    engine = outbox_engine(url)
    try:
        assert engine.dialect.name == "postgresql"
    finally:
        engine.dispose()


def test_the_receivers_store_opens_on_its_volume_as_the_kubelet_prepares_it(
    tmp_path: Path,
) -> None:
    store, mount = _store_on_volume(_receiver()[2])
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o2775)  # fsGroup: the pod's group, writable by it, set-group-id
    path = volume / store.relative_to(mount["mountPath"])

    ReceiverStore(path).close()
    ReceiverStore(path).close()  # a restart: OnRootMismatch leaves the volume as it is

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    # Why a directory below the root, and why OnRootMismatch: the kubelet's default (Always)
    # makes every directory and file on the volume group-writable at each mount.
    with pytest.raises(ConfigurationError, match="writable by group"):
        ReceiverStore(volume / store.name)
    for what, bits in ((path.parent, 0o070), (path, 0o060)):
        what.chmod(stat.S_IMODE(what.stat().st_mode) | bits)
    with pytest.raises(ConfigurationError, match="writable by group"):
        ReceiverStore(path)


def test_the_receivers_readiness_holds_and_it_takes_revocations_while_kafka_is_down(
    tmp_path: Path,
) -> None:
    ready = _receiver()[2]["readinessProbe"]["httpGet"]["path"]
    receiver = receiver_server(tmp_path)
    assert receiver.verifier is not None
    issuer = receiver.verifier.issuer
    signer = SecurityEventSigner(SET_KEY, algorithm="HS256")
    url = "http://{}:{}{}".format(*receiver.address, receiver.path)

    def push(user: str) -> int:
        now = datetime.now(UTC)
        event = UserDeleted(issuer=issuer, occurred_at=now, user_id=user, at=now)
        return post(url, signer.encode(event).encode(), "application/secevent+jwt")[0]

    receiver.start()
    try:
        assert push("deploy-kim") == 202
        # The relay cannot publish it and backs off: /v1/status says so.
        wait_for(lambda: status_of(receiver.address, "/v1/status") == 503)
        assert status_of(receiver.address, ready) == 200
        assert push("deploy-lee") == 202
        assert receiver.relay.status()["pending_rows"] == 2
    finally:
        receiver.stop()


def test_the_secrets_hold_only_placeholders() -> None:
    for (kind, name), data in env_sources().items():
        if kind == "Secret":
            for key, value in data.items():
                assert "REPLACE-ME" in value or key.endswith("_USERNAME"), (name, key)


def test_pods_run_as_the_images_non_root_user() -> None:
    uid, gid = image_user()
    for _, template, container in image_containers():
        pod = template["spec"].get("securityContext", {})
        effective = pod | container.get("securityContext", {})
        assert pod["runAsNonRoot"] is True
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert (effective["runAsUser"], effective["runAsGroup"]) == (uid, gid)
        assert effective["allowPrivilegeEscalation"] is False
        assert effective["readOnlyRootFilesystem"] is True
        assert effective["capabilities"] == {"drop": ["ALL"]}


_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(text: str | int) -> float:
    """A Kubernetes quantity (``60m``, ``256Mi``, ``1``) as a number."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match, f"not a quantity: {text}"
    assert match.group(2) in _UNITS, f"unit {match.group(2)} not read here"
    return float(match.group(1)) * _UNITS[match.group(2)]


def test_resources_hold_the_measured_sizes() -> None:
    settings = env_sources()["ConfigMap", "jwt-revocation-settings"]
    max_entries = int(settings["JWT_REVOCATION_MAX_ENTRIES"])
    for _, _, container in image_containers():
        resources = container["resources"]
        for what in ("cpu", "memory"):
            request = quantity(resources["requests"][what])
            assert 0 < request <= quantity(resources["limits"][what]), (container["name"], what)
        command = command_name(parse_command(container["args"]))
        if command == "receive":
            assert quantity(resources["requests"]["memory"]) >= RECEIVER_RSS
        if command == "sidecar":
            assert quantity(resources["requests"]["memory"]) >= SIDECAR_RSS
            # Past max_entries the sidecar fails closed: the limit must hold that many, or the
            # kernel kills it first.
            full = SIDECAR_RSS + max_entries * BYTES_PER_ENTRY
            assert quantity(resources["limits"]["memory"]) >= full


def test_quantities_are_read_as_kubernetes_reads_them() -> None:
    assert quantity("60m") == pytest.approx(0.06)
    assert quantity("256Mi") == 256 * 2**20
    assert quantity("1") == 1
    assert quantity(2) == 2
