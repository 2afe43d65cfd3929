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
import os
import re
import stat
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest

import jwt_revocation
from jwt_revocation.consumer import RevocationSidecar, SharedRevocations
from jwt_revocation.consumer._shared_state import SharedStateWriter
from jwt_revocation.consumer._shared_table import capacity_for, file_size
from jwt_revocation.producer import ReceiverStore
from jwt_revocation.producer.outbox import outbox_engine
from jwt_revocation.shared import (
    ConfigurationError,
    RevocationSettings,
    SecurityEventSigner,
    SidecarUnavailableError,
    UserDeleted,
)
from tests.deploy import (
    IMAGE,
    KUBERNETES,
    SERVING_COMMANDS,
    SET_KEY,
    SharedStatePod,
    command_name,
    command_server,
    container_environment,
    containers,
    dockerfile,
    effective_security,
    env_sources,
    environment_on_volumes,
    image_containers,
    image_user,
    kubernetes_objects,
    kustomization_file,
    listen_address,
    on_volumes,
    only,
    parse_command,
    receiver_server,
    setting_names,
    shared_state_pods,
    status_of,
    volume_directories,
)
from tests.support import post, wait_for

MINIMUM = "1.29"
"""Native sidecars (an init container with ``restartPolicy: Always``) are on by default from
Kubernetes 1.29."""

SIDECAR_RSS = 100e6
"""Bytes of RSS of ``jwt-revocation sidecar --http`` with an empty state (measured here as row 12
measures: 95.2 MiB = 99.8 MB after a 10 s quiet interval, 95.3 MiB after 80 s idle; a sidecar
embedded in a service, ``python -m bench.service watch``, 73.2 MiB)."""
BYTES_PER_ENTRY = 126
TYPICAL_ENTRIES = 100_000
"""Live entries at 28 revocations/s with one-hour tokens (README, Sizing): the requests' load."""
"""RSS per live revocation (README, Sizing; BENCHMARKS.md row 3)."""
WRITER_RSS = 113e6
"""Bytes of RSS of ``jwt-revocation sidecar --shared-path PATH --http`` besides its table
(measured here with max_entries 1,000,000, the file in /dev/shm: 132,524 kB after applying
200,000 revocations, of which 19,548 kB the table's pages; 124,740 kB idle before them)."""
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


def _mount_of(container: dict[str, Any], path: PurePosixPath) -> dict[str, Any]:
    """The one volume mount of ``container`` that ``path`` lies under."""
    mounts: list[dict[str, Any]] = [
        m for m in container.get("volumeMounts", []) if path.is_relative_to(m["mountPath"])
    ]
    assert len(mounts) == 1, f"{container['name']}: {path} is on no volume, or on several"
    return mounts[0]


def _store_on_volume(container: dict[str, Any]) -> tuple[PurePosixPath, dict[str, Any]]:
    """The receiver's SQLite store (its file path) and the volume mount it lies under."""
    given = {v["name"]: v.get("value") for v in container["env"]}
    assert given.get(STORE_SETTING), "the default store is on the read-only root file system"
    store = PurePosixPath(given[STORE_SETTING])
    assert store.is_absolute(), f"{STORE_SETTING} is a file here, not a URL: {store}"
    return store, _mount_of(container, store)


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


def _settings(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> RevocationSettings:
    """The settings a process whose only ``JWT_*`` variables are ``environment`` reads."""
    for name in [n for n in os.environ if n.startswith("JWT_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return RevocationSettings()


def test_the_host_writer_and_its_readers_share_one_file_on_a_memory_volume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for pod in shared_state_pods():
        path = PurePosixPath(pod.args.shared_path)
        assert path.is_absolute(), path
        written = _mount_of(pod.writer, path)
        assert not written.get("readOnly", False)
        assert pod.readers, "no container reads the writer's file"
        writer = _settings(container_environment(pod.writer), monkeypatch)
        for reader in pod.readers:
            environment = container_environment(reader)
            assert environment["JWT_REVOCATION_SHARED_PATH"] == str(path)
            read = _mount_of(reader, path)
            assert (read["name"], read["mountPath"]) == (written["name"], written["mountPath"])
            assert read.get("readOnly") is True, "only the writer may change the file"
            # A reader given another window than the writer's refuses the file.
            settings = _settings(environment, monkeypatch)
            assert settings.max_token_lifetime == writer.max_token_lifetime
            assert settings.max_clock_skew == writer.max_clock_skew
        (volume,) = [v for v in pod.template["spec"]["volumes"] if v["name"] == written["name"]]
        assert volume["emptyDir"]["medium"] == "Memory"
        # Room for two tables: a file the writer cannot take over stays in memory, beside the
        # new one, until its last reader lets it go.
        table = file_size(capacity_for(writer.max_entries))
        assert quantity(volume["emptyDir"]["sizeLimit"]) >= 2 * table


def _host_writer(
    pod: SharedStatePod, directories: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, SharedStateWriter]:
    """The writer's file as its command makes it on the pod's volume, caught up (ready)."""
    environment = environment_on_volumes(pod.writer, directories)
    path = on_volumes(pod.writer, pod.args.shared_path, directories)
    # What `jwt-revocation sidecar` does with its arguments (cli/_sidecar_commands.py).
    settings = _settings(environment, monkeypatch).model_copy(
        update={"shared_path": path, "shared_group": pod.args.shared_group}
    )
    writer = RevocationSidecar.from_settings(settings).shared
    assert writer is not None
    writer.open()
    writer.heartbeat(settings.topic, time.time())
    return Path(path), writer


def _reader(
    reader: dict[str, Any],
    directories: dict[str, Path],
    uid: int,
    monkeypatch: pytest.MonkeyPatch,
) -> SharedRevocations:
    """What a worker of ``reader`` opens, configured from its environment, running as ``uid``."""
    settings = _settings(environment_on_volumes(reader, directories), monkeypatch)
    assert settings.shared_path is not None
    with monkeypatch.context() as patch:
        patch.setattr(os, "geteuid", lambda: uid)
        return SharedRevocations(
            settings.shared_path,
            max_token_lifetime=settings.max_token_lifetime.total_seconds(),
            max_clock_skew=settings.max_clock_skew.total_seconds(),
        )


def _refusal(shared: SharedRevocations) -> str:
    with pytest.raises(SidecarUnavailableError) as refused:
        shared.ensure_usable()
    assert refused.value.reason == "failed"
    return str(refused.value)


def test_the_readers_take_the_file_the_writer_makes_as_the_manifest_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is 0600 (no --shared-group) and a reader refuses a file another user owns
    (root aside, and there is no owner= setting): every reader runs as the writer's user."""
    for index, pod in enumerate(shared_state_pods()):
        uid = effective_security(pod.template, pod.writer)["runAsUser"]
        assert pod.args.shared_group is None
        assert "JWT_REVOCATION_SHARED_GROUP" not in container_environment(pod.writer)
        directories = volume_directories(pod.template, tmp_path / str(index))
        path, writer = _host_writer(pod, directories, monkeypatch)
        try:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            # The file is the writer's, as in the pod: as root here it is given the writer's
            # uid; else this user's uid stands for the writer's.
            if os.geteuid() == 0:
                os.chown(path, uid, -1)
            here = os.geteuid() - uid if os.geteuid() else 0
            for reader in pod.readers:
                reader_uid = effective_security(pod.template, reader)["runAsUser"]
                assert reader_uid == uid, f"{reader['name']} would be refused the file"
                shared = _reader(reader, directories, here + reader_uid, monkeypatch)
                shared.ensure_usable()
                assert shared.check("a-jti", "kim", time.time()) is None
                # Run as another user, it would be refused.
                other = _reader(reader, directories, here + reader_uid + 1, monkeypatch)
                assert f"owned by uid {path.stat().st_uid}" in _refusal(other)
        finally:
            writer.close()


def test_a_disk_backed_empty_dir_would_be_refused_to_the_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why ``medium: Memory`` besides speed: the root of a tmpfs has the sticky bit; the
    kubelet makes any other emptyDir 0777 without it, and a reader refuses a file in a
    directory that others may write without the sticky bit."""
    pod = shared_state_pods()[0]
    template = copy.deepcopy(pod.template)
    for volume in template["spec"]["volumes"]:
        volume["emptyDir"].pop("medium", None)
    directories = volume_directories(template, tmp_path)
    path, writer = _host_writer(pod, directories, monkeypatch)
    try:
        shared = _reader(pod.readers[0], directories, os.geteuid(), monkeypatch)
        assert "writable by others without the sticky bit" in _refusal(shared)
    finally:
        writer.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) & stat.S_ISVTX == 0


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
        args = parse_command(container["args"])
        command = command_name(args)
        if command == "receive":
            assert quantity(resources["requests"]["memory"]) >= RECEIVER_RSS
        if command == "sidecar" and args.shared_path is not None:
            # A host writer: the table, sized for max_entries, is all written at its creation
            # and charged to the writer; its entries add nothing to the process.
            table = file_size(capacity_for(max_entries))
            assert quantity(resources["requests"]["memory"]) >= WRITER_RSS + table
            assert quantity(resources["limits"]["memory"]) >= WRITER_RSS + table
        elif command == "sidecar":
            # The request holds the sized traffic's window (README, Sizing): 100,000 entries.
            typical = SIDECAR_RSS + TYPICAL_ENTRIES * BYTES_PER_ENTRY
            assert quantity(resources["requests"]["memory"]) >= typical
            # Past max_entries the sidecar fails closed: the limit must hold that many, or the
            # kernel kills it first.
            full = SIDECAR_RSS + max_entries * BYTES_PER_ENTRY
            assert quantity(resources["limits"]["memory"]) >= full


def test_quantities_are_read_as_kubernetes_reads_them() -> None:
    assert quantity("60m") == pytest.approx(0.06)
    assert quantity("256Mi") == 256 * 2**20
    assert quantity("1") == 1
    assert quantity(2) == 2
