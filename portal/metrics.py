"""What /metrics shows, in Prometheus's text format: figures of two kinds, chosen per metric (README, "Operating
the portal").

Counted where the work happens: counters and histograms the layers above define with prometheus-client (webhooks
answered, in the web process; calls to Stella, mostly in a task cluster). Each process group (one gunicorn and
its workers; one `manage.py runcluster` and its workers) pools its processes' counts in prometheus-client's
multiprocess files, in a directory of its own (PROMETHEUS_MULTIPROC_DIR, emptied at start: metrics_dir_prepare).
A web process serves its own group's counts, and each task cluster's as its last heartbeat carried them
(portal/heartbeat.py), so one scrape sees every process on every machine. Each such series names the group that
counted it in its `process` label.

Read at scrape time: gauges from the database, by collectors the layers above register (metrics_register), each
reading an index or the daily counts, never scanning a log table; a collector that fails (the database is down)
is left out and `portal_metrics_collector_up` says so.
"""

from __future__ import annotations

import glob
import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from prometheus_client import REGISTRY
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

logger = logging.getLogger(__name__)

# Every metric of the portal's own starts so; in a process without multiprocess files the default registry also
# holds the client's process_* and python_* figures, which are left out of what a cluster reports.
PREFIX = "portal_"

Collect = Callable[[datetime], Iterable[Metric]]
_collectors: dict[str, Collect] = {}


def metrics_register(collect: Collect) -> None:
    """Add a source of figures read at scrape time. The layers above register theirs in AppConfig.ready(): the
    portal knows no app, each app knows what of its own is worth watching."""
    _collectors[f"{collect.__module__}.{collect.__qualname__}"] = collect


def metrics_dir_prepare(path: str) -> None:
    """Make an empty multiprocess directory for a process group that is starting: counts of processes gone
    before (an earlier run) would otherwise be added to its own. Only prometheus-client's files are deleted."""
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def metrics_counted_here() -> list[Metric]:
    """This process group's counts: pooled from its multiprocess files, else this one process's own."""
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        return list(MultiProcessCollector.merge(glob.glob(os.path.join(directory, "*.db")), accumulate=True))
    families = []
    for family in REGISTRY.collect():
        if family.name.startswith(PREFIX):
            # Creation times are per process: a pooled count has none (as in multiprocess mode).
            family.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
            families.append(family)
    return families


def metrics_snapshot() -> list[dict[str, Any]]:
    """This process group's counts as JSON, for a task cluster's heartbeat to carry to the web process."""
    return [
        {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [[sample.name, sample.labels, sample.value] for sample in family.samples],
        }
        for family in metrics_counted_here()
    ]


def metrics_from_snapshot(snapshot: list[dict[str, Any]], *, labels: dict[str, str]) -> list[Metric]:
    """The families a heartbeat carried, each series labelled with the process group that counted it."""
    families = []
    for entry in snapshot:
        family = Metric(entry["name"], entry["help"], entry["type"])
        for name, sample_labels, value in entry["samples"]:
            family.add_sample(name, {**labels, **sample_labels}, value)
        families.append(family)
    return families


def process_label(*, role: str) -> str:
    """Which process group counted a series: its role, machine and multiprocess directory (else its pid)."""
    return f"{role} {socket.gethostname()}:{settings.PROMETHEUS_MULTIPROC_DIR or os.getpid()}"


def metrics_exposition(*, now: datetime) -> bytes:
    """Everything /metrics shows, in Prometheus's text format."""
    families: dict[str, Metric] = {}
    web = {"process": process_label(role="web")}
    _merge(families, [_labelled(family, web) for family in metrics_counted_here()])
    up = GaugeMetricFamily(
        "portal_metrics_collector_up",
        "1 if the collector read its figures at this scrape, 0 if it failed (its figures are missing).",
        labels=["collector"],
    )
    for name, collect in sorted(_collectors.items()):
        try:
            collected = list(collect(now))
        except DatabaseError:
            logger.warning("metrics.collector_failed", extra={"collector": name}, exc_info=True)
            up.add_metric([name], 0)
            continue
        up.add_metric([name], 1)
        _merge(families, collected)
    _merge(families, [up])
    return generate_latest(_Families(list(families.values())))


def _labelled(family: Metric, labels: dict[str, str]) -> Metric:
    copy = Metric(family.name, family.documentation, family.type)
    copy.samples = [sample._replace(labels={**labels, **sample.labels}) for sample in family.samples]
    return copy


def _merge(families: dict[str, Metric], more: Iterable[Metric]) -> None:
    """One family per name, whoever counted its series (the text format allows a name once)."""
    for family in more:
        known = families.get(family.name)
        if known is None:
            families[family.name] = _labelled(family, {})
        elif known.type == family.type:
            known.samples.extend(Sample(*sample) for sample in family.samples)
        else:
            logger.warning("metrics.type_conflict", extra={"metric": family.name})


class _Families:
    """What generate_latest reads: a collector of families already gathered."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
