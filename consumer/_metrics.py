"""Prometheus metrics of a sidecar and its verifiers, read when scraped: nothing on the hot path.

Register :class:`SidecarCollector` with an application's own registry (or the default one) to
serve the metrics from the application's ``/metrics``; :func:`render_metrics` gives the text
format for a standalone endpoint. Counters by reason (records skipped, snapshots not used, event anomalies, verification
outcomes) have
a series for every reason the code knows, 0 until it happens, so that an alert on
``increase()`` sees the first one. deploy/prometheus/ alerts on these names and
deploy/grafana/ charts them; their tests scrape a real sidecar for every name they use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import get_args

from jwt_revocation.shared import EVENT_TYPES, RecordReason, RevocationReason, SnapshotReason
from jwt_revocation.shared._extras import needs_extra

from ._apply import ANOMALIES
from ._health import SidecarStatus
from ._sidecar import RevocationSidecar
from ._verifier import RevocationVerifier

with needs_extra("metrics", __name__):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector


class SidecarCollector(Collector):
    """Collects ``jwt_revocation_*`` metrics from a sidecar and any verifiers over it."""

    def __init__(
        self, sidecar: RevocationSidecar, verifiers: Iterable[RevocationVerifier] = ()
    ) -> None:
        self.sidecar = sidecar
        self.verifiers: Sequence[RevocationVerifier] = list(verifiers)

    def collect(self) -> Iterator[Metric]:
        """Build every metric from one ``stats()`` copy."""
        stats = self.sidecar.stats()
        labels = ["sidecar"]
        name = self.sidecar.name

        ready = GaugeMetricFamily(
            "jwt_revocation_ready", "1 when verification can decide, else 0", labels=labels
        )
        ready.add_metric([name], 1.0 if stats.ready else 0.0)
        yield ready

        status = GaugeMetricFamily(
            "jwt_revocation_status",
            "1 for the sidecar's current status",
            labels=[*labels, "status"],
        )
        for value in SidecarStatus:
            status.add_metric([name, value.value], 1.0 if stats.status is value else 0.0)
        yield status

        applied = CounterMetricFamily(
            "jwt_revocation_events_applied",
            "Events applied, by type (duplicates included)",
            labels=[*labels, "type"],
        )
        for event_type in EVENT_TYPES:
            applied.add_metric([name, event_type], float(stats.applied.get(event_type, 0)))
        yield applied

        skipped = CounterMetricFamily(
            "jwt_revocation_records_skipped",
            "Records that were not valid events, by kind",
            labels=[*labels, "kind"],
        )
        for kind, count in sorted(_every(RecordReason, stats.skipped).items()):
            skipped.add_metric([name, kind], float(count))
        yield skipped

        failed = CounterMetricFamily(
            "jwt_revocation_record_failures",
            "Records whose decoding raised an unexpected error (a bug), by error type; never "
            "skipped: the consumer restarts at them and fails closed if it keeps failing",
            labels=[*labels, "error"],
        )
        for error, count in sorted(stats.failed.items()):
            failed.add_metric([name, error], float(count))
        yield failed

        anomalies = CounterMetricFamily(
            "jwt_revocation_event_anomalies",
            "Events applied despite something odd, by kind (key_mismatch: the record's Kafka key "
            "is not the event's user id, so that user's events may not be in order on one "
            "partition; the merge rules need no order)",
            labels=[*labels, "kind"],
        )
        for kind, count in sorted((dict.fromkeys(ANOMALIES, 0) | stats.anomalies).items()):
            anomalies.add_metric([name, kind], float(count))
        yield anomalies

        entries = GaugeMetricFamily(
            "jwt_revocation_entries", "Live entries, by kind", labels=[*labels, "kind"]
        )
        for kind, count in sorted(stats.entries.items()):
            entries.add_metric([name, kind], float(count))
        yield entries

        contact = GaugeMetricFamily(
            "jwt_revocation_seconds_since_contact",
            "Seconds since the sidecar last heard from the broker",
            labels=labels,
        )
        if stats.seconds_since_contact is not None:
            contact.add_metric([name], stats.seconds_since_contact)
        yield contact

        lag = GaugeMetricFamily(
            "jwt_revocation_partition_lag",
            "Records the sidecar has not applied yet, per partition",
            labels=[*labels, "partition"],
        )
        for partition, progress in sorted(stats.partitions.items()):
            if progress.lag is not None:
                lag.add_metric([name, str(partition)], float(progress.lag))
        yield lag

        unused = CounterMetricFamily(
            "jwt_revocation_snapshots_unused",
            "Snapshots not loaded at a start, by reason (unsigned and forged: refused under a "
            "key); the window was replayed instead",
            labels=[*labels, "reason"],
        )
        for reason, count in sorted(_every(SnapshotReason, stats.snapshots_unused).items()):
            unused.add_metric([name, reason], float(count))
        yield unused

        restarts = CounterMetricFamily(
            "jwt_revocation_restarts", "Consumer restarts after errors", labels=labels
        )
        restarts.add_metric([name], float(stats.restarts))
        yield restarts

        delay = HistogramMetricFamily(
            "jwt_revocation_apply_delay_seconds",
            "Delay from an event's publication (its record timestamp) to its application",
            labels=labels,
        )
        delay.add_metric(
            [name],
            [(_bound(bound), float(count)) for bound, count in stats.apply_delay],
            sum_value=stats.apply_delay_sum,
        )
        yield delay

        outcomes = CounterMetricFamily(
            "jwt_revocation_verifications",
            "verify() outcomes: accepted, or the reason for a rejection",
            labels=[*labels, "outcome"],
        )
        # Every outcome a verify() can count, 0 until it happens (see _every).
        totals = dict.fromkeys(
            ("accepted", "invalid", "unavailable", *get_args(RevocationReason)), 0
        )
        for verifier in self.verifiers:
            totals["accepted"] += verifier.accepted
            for reason, count in verifier.rejected.items():
                totals[reason] = totals.get(reason, 0) + count
        for outcome, count in sorted(totals.items()):
            outcomes.add_metric([name, outcome], float(count))
        yield outcomes


def _every(reasons: object, counts: Mapping[str, int]) -> dict[str, int]:
    """``counts`` with a 0 for every reason of the ``Literal`` not counted yet: a series exists
    from the first scrape, so ``increase()`` sees its first count too (a series that appears at
    1 shows no increase)."""
    return dict.fromkeys(get_args(reasons), 0) | dict(counts)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def render_metrics(
    sidecar: RevocationSidecar, verifiers: Iterable[RevocationVerifier] = ()
) -> bytes:
    """The Prometheus text format of one sidecar's metrics."""
    registry = CollectorRegistry()
    registry.register(SidecarCollector(sidecar, verifiers))
    return generate_latest(registry)
