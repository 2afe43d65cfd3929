"""The deployment run for real: the manifests' commands and probes, and what the alerts and the
dashboard read.

Each container of the image in deploy/kubernetes/ runs here as its manifest says (its
arguments, ConfigMap, Secret and env), with only what differs on this machine replaced: the
plain broker on 127.0.0.1:9092 and a topic of its own, loopback ports, keys made here, a SQLite
outbox, a directory here for each volume (the receiver's store); the receiver also takes
back-channel logouts, as its manifest's comment offers. A host writer's file is in a directory
laid out as the kubelet lays out its volume, and the containers that read it run as gunicorn
workers from their own environment in the manifest: a token revoked while they run is refused by
every one of them. Once every readiness probe answers 200,
a little traffic gives each metric its samples and each ``/metrics`` is scraped, with that of a
receiver in this process that answered a 500 (no request causes one: its key source fails).
Every metric, label and label value that the alerting rules, their promtool tests and the
Grafana dashboard use must be in those scrapes (or, for a label value, one the code defines);
a value a rule or the dashboard names, even to exclude it, too. promtool, Debian's
(scripts/services.sh installs it), checks the rules and runs their unit tests.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from jwt_revocation.consumer import SidecarStatus
from jwt_revocation.producer import LogoutTokenVerifier, RevocationPublisher, SecurityEventReceiver
from jwt_revocation.producer._receiver import RELAY_NAME
from jwt_revocation.shared import (
    RecordReason,
    SecurityEventSigner,
    SnapshotReason,
    UserDeleted,
    ensure_topic,
)
from tests.deploy import (
    GRAFANA,
    PROMETHEUS,
    ROOT,
    SERVING_COMMANDS,
    KafkaDown,
    Selector,
    command_name,
    environment_on_volumes,
    image_containers,
    on_volumes,
    parse_command,
    selectors,
    shared_state_pods,
    status_of,
    volume_directories,
)
from tests.integration.conftest import BOOTSTRAP, KEY, LIFETIME, SESSION, free_port, issue, serving
from tests.integration.test_shared_state import every_worker
from tests.support import post_logout, wait_for

RULES = PROMETHEUS / "jwt-revocation.rules.yaml"
RULE_TESTS = PROMETHEUS / "jwt-revocation.rules.test.yaml"
DASHBOARD = GRAFANA / "jwt-revocation.json"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
TARGET_LABELS = frozenset({"instance", "job"})
"""Labels Prometheus adds to every series it scrapes."""
KNOWN_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("jwt_revocation_status", "status"): frozenset(s.value for s in SidecarStatus),
    ("jwt_revocation_records_skipped_total", "kind"): frozenset(get_args(RecordReason)),
    ("jwt_revocation_snapshots_unused_total", "reason"): frozenset(get_args(SnapshotReason)),
}
"""Label values the code defines beyond those a scrape happens to show."""
OPEN_LABELS: dict[str, frozenset[str]] = {
    "jwt_revocation_record_failures_total": frozenset({"sidecar", "error"}),
}
"""The labels of counters by an open set of values (an exception's type): no series until the
first count, which no traffic of a working deployment causes; tests/integration/test_faults.py
scrapes them from a sidecar whose decoder fails."""
CLOSED_LABELS = frozenset({"status", "kind", "reason", "outcome", "type", "le"})
"""Labels whose values the code decides (the others name sidecars, relays, partitions)."""
RECEIVER_SOURCE = ROOT / "producer" / "_receiver.py"
"""Where the receiver's outcomes and kinds are named (``"unavailable"``, ``"backchannel"``)."""


@dataclass
class Scraped:
    """What the deployment's servers exported: sample names, their labels and label values."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            for suffix in suffixes.get(family.type, [""]):
                self.labels.setdefault(family.name + suffix, set())
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    self.values.setdefault((sample.name, label), set()).add(value)

    def allowed(self, metric: str, label: str) -> set[str]:
        """The values ``label`` of ``metric`` can take: the scrape's and the code's."""
        known = KNOWN_VALUES.get((metric, label))
        if known is not None:
            return set(known)
        seen = self.values.get((metric, label), set())
        if metric.startswith("jwt_revocation_receiver_"):
            return seen | set(re.findall(r'"([a-z_]+)"', RECEIVER_SOURCE.read_text()))
        return seen


@dataclass
class Deployed:
    """The deployment's servers, running: by workload, the address, the command, the probes'
    paths and the directories standing for the pod's volumes of its container of the image."""

    topic: str
    here: dict[str, str | None]
    """The values that differ on this machine (:func:`_environment`)."""
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    probes: dict[str, list[str]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Path]] = field(default_factory=dict)
    scraped: Scraped = field(default_factory=Scraped)

    def address_of(self, command: str) -> tuple[str, int]:
        """The address of the first workload running ``command``."""
        return next(a for name, a in self.addresses.items() if self.commands[name] == command)


def _get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _environment(
    container: dict[str, Any],
    here: Mapping[str, str | None],
    extra: dict[str, str],
    volumes: dict[str, Path],
) -> dict[str, str]:
    """The container's environment as Kubernetes would build it, with ``here``'s values for
    the names it has (None: left out), ``extra`` added, and each path on a volume it mounts
    moved to that volume's directory in ``volumes`` (:func:`volume_directories`)."""
    given = environment_on_volumes(container, volumes)
    for name in set(given) & set(here):
        value = here[name]
        if value is None:
            del given[name]
        else:
            given[name] = value
    given |= extra
    placeholders = sorted(name for name, value in given.items() if "REPLACE-ME" in value)
    assert not placeholders, f"{container['name']}: no value for {placeholders} on this machine"
    return {n: v for n, v in os.environ.items() if not n.startswith("JWT_")} | given


def _run_container(
    running: ExitStack,
    container: dict[str, Any],
    env: dict[str, str],
    volumes: dict[str, Path],
    log: Path,
) -> tuple[tuple[str, int], list[str]]:
    """Start a container of the image as its manifest says, its ``--http`` moved to a free
    loopback port and each path on a volume to that volume's directory, until ``running``
    closes; once its readiness probe answers 200, its address and its probes' paths."""
    args = [on_volumes(container, word, volumes) for word in container["args"]]
    address = ("127.0.0.1", free_port())
    args[args.index("--http") + 1] = "{}:{}".format(*address)
    ready = container["readinessProbe"]["httpGet"]["path"]
    running.enter_context(
        serving(
            ["jwt_revocation.cli", *args],
            env=env,
            log=log,
            alive=functools.partial(_answers, address, ready),
        )
    )
    return address, [container[p]["httpGet"]["path"] for p in PROBES if p in container]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("deploy")
    topic = f"test-{SESSION}-{uuid.uuid4().hex[:8]}"
    ensure_topic(BOOTSTRAP, topic, max_token_lifetime=LIFETIME, partitions=3)
    set_key = ec.generate_private_key(ec.SECP256R1())
    set_public = set_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    database = f"sqlite:///{tmp / 'outbox.db'}"
    init = [sys.executable, "-m", "jwt_revocation.cli", "outbox", "init"]
    subprocess.run([*init, "--database-url", database], check=True, capture_output=True)
    tokens = {"http": secrets.token_urlsafe(16), "receiver": secrets.token_urlsafe(16)}
    here: dict[str, str | None] = {
        "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "JWT_REVOCATION_TOPIC": topic,
        "JWT_REVOCATION_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "JWT_REVOCATION_KAFKA_SASL_MECHANISM": None,
        "JWT_REVOCATION_KAFKA_SASL_USERNAME": None,
        "JWT_REVOCATION_KAFKA_SASL_PASSWORD": None,
        "JWT_REVOCATION_VERIFY_KEY": KEY,
        "JWT_REVOCATION_HTTP_TOKEN": tokens["http"],
        "JWT_REVOCATION_SET_VERIFY_KEY": set_public.decode(),
        "JWT_REVOCATION_RECEIVER_TOKEN": tokens["receiver"],
        "JWT_REVOCATION_DATABASE_URL": database,
    }
    logout = {
        "JWT_REVOCATION_OIDC_ISSUER": "http://127.0.0.1:9/realms/deploy",
        "JWT_REVOCATION_OIDC_CLIENT_ID": "orders",
        "JWT_REVOCATION_OIDC_JWKS_URL": "http://127.0.0.1:9/certs",
    }
    deployed = Deployed(topic, here)
    receiver_env: dict[str, str] = {}
    with ExitStack() as running:
        for workload, template, container in image_containers():
            name = workload["metadata"]["name"]
            assert name not in deployed.addresses, f"{name}: one container of the image a pod"
            command = command_name(parse_command(container["args"]))
            volumes = volume_directories(template, tmp / "volumes" / name)
            extra = logout if command == "receive" else {}
            env = _environment(container, here, extra, volumes)
            if command == "receive":
                receiver_env = env
            address, paths = _run_container(running, container, env, volumes, tmp / f"{name}.log")
            deployed.addresses[name], deployed.probes[name] = address, paths
            deployed.commands[name], deployed.volumes[name] = command, volumes
        _traffic(deployed, set_key, tokens, receiver_env)
        for address in deployed.addresses.values():
            deployed.scraped.add(_metrics(address))
        with _receiver_with_a_bug(tmp, set_key) as address:
            deployed.scraped.add(_metrics(address))
        yield deployed


def _metrics(address: tuple[str, int]) -> str:
    with urllib.request.urlopen("http://{}:{}/metrics".format(*address), timeout=10) as answer:
        return str(answer.read().decode())


@contextmanager
def _receiver_with_a_bug(tmp: Path, key: ec.EllipticCurvePrivateKey) -> Iterator[tuple[str, int]]:
    """A receiver that has answered a logout 500, serving: no request can cause a 500 (it is a
    bug), so this one's key source fails. Its 500s have series only from the first one on."""

    def failing_keys(header: Mapping[str, Any]) -> Any:
        raise RuntimeError("the key source has a bug (a test's)")

    issuer = "http://127.0.0.1:9/realms/bug"
    logout = LogoutTokenVerifier(
        issuer=issuer, client_id="orders", keys=failing_keys, algorithms=["ES256"]
    )
    receiver = SecurityEventReceiver(
        KafkaDown(),
        None,
        max_token_lifetime=LIFETIME,
        store=tmp / "bug" / "receiver.db",
        port=0,
        logout=logout,
    )
    receiver.start()
    try:
        url = "http://{}:{}{}".format(*receiver.address, receiver.logout_path)
        token = jwt.encode({"iss": issuer}, key, algorithm="ES256", headers={"typ": "logout+jwt"})
        assert post_logout(url, token)[0] == 500
        yield receiver.address
    finally:
        receiver.stop()


def _answers(address: tuple[str, int], path: str) -> bool:
    try:
        return status_of(address, path) == 200
    except OSError:
        return False


def _traffic(
    deployed: Deployed,
    set_key: ec.EllipticCurvePrivateKey,
    tokens: dict[str, str],
    receiver_env: dict[str, str],
) -> None:
    """An event applied, a record skipped, a check answered, a request too long refused, a
    SET pushed and a malformed logout refused: every family the alerts and the dashboard read
    gets samples with its labels."""
    sidecar = "http://{}:{}".format(*deployed.address_of("sidecar"))
    topic = deployed.topic
    with RevocationPublisher(BOOTSTRAP, topic, issuer="auth") as publisher:
        publisher.password_changed(user_id="deploy-kim")
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    try:
        producer.send(topic, key=b"deploy", value=b"not an event").get(timeout=10)
    finally:
        producer.close()
    check = json.dumps({"token": issue("deploy-lee")}).encode()
    auth = {"Content-Type": "application/json", "Authorization": f"Bearer {tokens['http']}"}
    assert _get(f"{sidecar}/v1/check", check, auth) == 200
    # A request target past JWT_REVOCATION_HTTP_MAX_PATH_BYTES (8 KiB): refused, and counted.
    assert _get(f"{sidecar}/{'x' * 9000}") == 414

    receiver = "http://{}:{}".format(*deployed.address_of("receive"))
    now = datetime.now(UTC)
    event = UserDeleted(
        issuer=receiver_env["JWT_REVOCATION_SET_ISSUER"],
        occurred_at=now,
        user_id="deploy-max",
        at=now,
    )
    signer = SecurityEventSigner(
        set_key, algorithm="ES256", audience=receiver_env["JWT_REVOCATION_SET_AUDIENCE"]
    )
    push = {
        "Content-Type": "application/secevent+jwt",
        "Authorization": f"Bearer {tokens['receiver']}",
    }
    assert _get(f"{receiver}/v1/events", signer.encode(event).encode(), push) == 202
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _get(f"{receiver}/backchannel-logout", b"logout_token=garbage", form) == 400

    def applied() -> bool:
        with urllib.request.urlopen(f"{sidecar}/v1/status", timeout=10) as response:
            stats = json.loads(response.read())
        return bool(stats["applied"].get("user_deleted") and stats["skipped"].get("not_json"))

    wait_for(applied, timeout=30)


# -- the manifests' commands ------------------------------------------------------------------


def test_every_probe_of_the_manifests_passes_on_the_running_commands(deployed: Deployed) -> None:
    assert set(deployed.addresses) == {w["metadata"]["name"] for w, _, _ in image_containers()}
    assert set(deployed.commands.values()) == set(SERVING_COMMANDS)
    # The traffic reached them: the scrapes show it.
    values = deployed.scraped.values
    assert "not_json" in values["jwt_revocation_records_skipped_total", "kind"]
    assert "stored" in values["jwt_revocation_receiver_pushes_total", "outcome"]
    assert "path_too_long" in values["jwt_revocation_http_refusals_total", "reason"]
    relays = values["jwt_revocation_outbox_published_total", "relay"]
    assert RELAY_NAME in relays, "the receiver's relay published what it stored"
    for name, paths in deployed.probes.items():
        for path in paths:
            assert status_of(deployed.addresses[name], path) == 200, (name, path)


# -- the host-shared state --------------------------------------------------------------------

READER_WORKERS = 2
READER_APP = "tests.integration.apps.shared_workers:flask_app"
"""Worker processes that build their verifier from their environment alone
(``RevocationSettings``, ``JWT_REVOCATION_VERIFY_KEY``), as the manifest's comment shows."""


def test_the_app_containers_workers_read_the_writers_file_and_refuse_a_revoked_token(
    deployed: Deployed, tmp_path: Path
) -> None:
    """Each container that reads a host writer's file, run as gunicorn workers with the
    container's environment from the manifest (only what differs here replaced) on the
    directory standing for the pod's volume, while the writer runs as its manifest says: a
    token accepted by every worker is refused by every worker once it is revoked."""
    for pod in shared_state_pods():
        name = pod.workload["metadata"]["name"]
        assert deployed.commands[name] == "sidecar"
        for path in deployed.probes[name]:
            assert status_of(deployed.addresses[name], path) == 200, (name, path)
        assert pod.readers, f"{name}: no container reads the writer's file"
        for reader in pod.readers:
            env = _environment(
                reader, deployed.here, {"PYTHONPATH": str(ROOT)}, deployed.volumes[name]
            )
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = ["gunicorn", "--workers", str(READER_WORKERS), "--bind"]
            token = issue(f"deploy-{reader['name']}")
            with serving(
                [*command, f"127.0.0.1:{port}", READER_APP],
                env=env,
                log=tmp_path / f"{name}-{reader['name']}.log",
                alive=functools.partial(_answers, ("127.0.0.1", port), "/healthz"),
            ):
                wait_for(every_worker(url, token, 200, READER_WORKERS), timeout=60, interval=0.01)
                with RevocationPublisher(BOOTSTRAP, deployed.topic, issuer="auth") as publisher:
                    publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
                wait_for(every_worker(url, token, 401, READER_WORKERS), timeout=30, interval=0.01)


# -- the alerting rules -----------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _check(
    selected: list[Selector], scraped: Scraped, where: str, *, every_value: bool = True
) -> set[str]:
    """Every selector names an exported metric, with labels and values it has; the labels of
    the metrics selected. A value a matcher names, even to exclude it, must occur; with
    ``every_value=False`` (invented series) only the values of the labels the code decides."""
    assert selected, f"{where}: no metric"
    labels: set[str] = set()
    for selector in selected:
        assert selector.metric in scraped.labels, f"{where}: nothing exports {selector.metric}"
        exported = scraped.labels[selector.metric] | OPEN_LABELS.get(selector.metric, set())
        labels |= exported
        for label, operator, value in selector.matchers:
            assert label in exported | TARGET_LABELS, f"{where}: {selector.metric} has no {label}"
            if label in TARGET_LABELS or not (every_value or label in CLOSED_LABELS):
                continue
            allowed = scraped.allowed(selector.metric, label)
            for alternative in value.split("|") if "~" in operator else [value]:
                assert alternative in allowed, f"{where}: {label}={alternative!r} never occurs"
    return labels


def test_every_metric_label_and_value_the_alerts_use_is_exported(deployed: Deployed) -> None:
    for rule in _rules():
        where = rule["alert"]
        labels = _check(selectors(rule["expr"]), deployed.scraped, where)
        templated = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        missing = templated - labels - TARGET_LABELS
        assert not missing, f"{where}: its annotations name labels it has not: {missing}"


def test_the_rule_tests_feed_series_the_code_exports(deployed: Deployed) -> None:
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for series in case["input_series"]:
            _check(selectors(series["series"]), deployed.scraped, case["name"], every_value=False)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/services.sh install installs it"
    return subprocess.run(
        [binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_rules() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_promtool_unit_tests_pass() -> None:
    tested = _promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, list[list[Any]]] = {}
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            cases.setdefault(check["alertname"], []).append(check["exp_alerts"])
    for rule in _rules():
        expected = cases.get(rule["alert"], [])
        assert any(expected), f"{rule['alert']} is never tested firing"
        assert any(alerts == [] for alerts in expected), f"{rule['alert']} is never tested quiet"


def test_promtool_fails_a_rule_test_that_does_not_hold(tmp_path: Path) -> None:
    """The unit tests above mean something: an alert that never fires fails them."""
    rules = yaml.safe_load(RULES.read_text())
    rules["groups"][0]["rules"][0]["expr"] = "vector(0) > 1"
    (tmp_path / RULES.name).write_text(yaml.safe_dump(rules))
    shutil.copy(RULE_TESTS, tmp_path)
    binary = shutil.which("promtool") or "promtool"
    broken = subprocess.run(
        [binary, "test", "rules", RULE_TESTS.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert broken.returncode != 0
    assert rules["groups"][0]["rules"][0]["alert"] in broken.stdout + broken.stderr


# -- the dashboard ----------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def test_every_metric_the_dashboard_queries_is_exported(deployed: Deployed) -> None:
    queried = set()
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r}"
            labels = _check(selectors(target["expr"]), deployed.scraped, where)
            grouped = re.findall(r"\bby\s*\(([^)]*)\)", target["expr"])
            for label in {w.strip() for g in grouped for w in g.split(",")} - {"le"}:
                assert label in labels | TARGET_LABELS, f"{where}: no label {label} to group by"
            queried |= {s.metric for s in selectors(target["expr"])}
    alerted = {s.metric for rule in _rules() for s in selectors(rule["expr"])}
    assert alerted <= queried, "the dashboard shows what every alert reads"


def test_the_dashboard_and_the_docs_name_the_alerts_there_are() -> None:
    alerts = {rule["alert"] for rule in _rules()}
    named = set(re.findall(r"\bJwtRevocation\w+", DASHBOARD.read_text()))
    assert named <= alerts, f"the dashboard names no such alerts: {sorted(named - alerts)}"
    page = (ROOT / "docs" / "production.md").read_text()
    table = set(re.findall(r"^\| `(JwtRevocation\w+)` \|", page, re.MULTILINE))
    assert table == alerts, "the docs' alerts table has a row for each alert, and no other"
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        named = set(re.findall(r"\bJwtRevocation\w+", doc.read_text()))
        assert named <= alerts, f"{doc.name} names no such alerts: {sorted(named - alerts)}"


def test_the_dashboard_is_one_grafana_can_import() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "jwt-revocation"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & area, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"]
