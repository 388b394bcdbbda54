"""The end-to-end sentinel: a write of its own to the source table, timed until it is
searchable through the alias, then its delete, timed until it is gone. It measures the whole
path (stream, classify, queue, sync, embedding, index refresh, alias) whether or not users
write, so a stalled stream, queue or function raises an alarm even on a quiet day, which
freshness measured from user writes cannot (no writes, no data points).

The item is invisible to users: its one principal and its tenant are reserved
(``dynembed.core.models.SENTINEL_*``; search refuses them to every caller but this one), the
audit skips its id and the cost figures leave its tenant out.

Waits are bounded. A write that is not searchable within ``wait_s`` publishes no value: the
alarms treat missing data as breaching, whatever the wait (a lower bound under the threshold
would read as healthy). The run logs why, with the time waited. Its delete is then not measured
(the item was never there to disappear), so that alarm fires too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dynembed.core.config import METRICS, TUNING
from dynembed.core.errors import ConfigError, DynembedError
from dynembed.core.models import SENTINEL_DOC_ID, SENTINEL_PRINCIPAL, SENTINEL_TENANT
from dynembed.core.observability import logger
from dynembed.core.ports import SentinelWriter
from dynembed.core.schema import SourceSchema
from dynembed.core.telemetry import Telemetry

if TYPE_CHECKING:
    from dynembed.wiring import Services

SentinelSearch = Callable[[str], Sequence[tuple[str, int]]]
"""Searches through the alias as the sentinel principal; returns (doc id, source version) hits."""
TITLE = "dynembed sentinel"


@dataclass
class SentinelResult:
    version: int
    started_at: float
    freshness_s: float | None = None
    """Write to searchable; on a timeout, the time waited (a lower bound, not published)."""
    freshness_timed_out: bool = False
    delete_s: float | None = None
    """Delete to gone (on a timeout, the time waited, not published); None when not measured
    (the write never became searchable)."""
    delete_timed_out: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.freshness_timed_out and not self.delete_timed_out and self.delete_s is not None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def sentinel_item(schema: SourceSchema, version: int, text: str, now: float) -> dict[str, Any]:
    """The sentinel's source item in the operator's schema: its reserved principal, its tenant."""
    if not schema.access_attributes:
        raise ConfigError(
            "sentinel: the source schema declares no access attribute, so the sentinel could not "
            "hold its item to its own principal (an item without one is readable by nobody)"
        )
    content = list(schema.content_attributes)
    item: dict[str, Any] = {schema.id_attribute: SENTINEL_DOC_ID, schema.version_attribute: version}
    if len(content) == 1:
        item[content[0]] = f"{TITLE}: {text}"
    else:
        item[content[0]] = TITLE
        item.update({attr: text for attr in content[1:]})
    item[schema.access_attributes[0]] = [SENTINEL_PRINCIPAL]
    if schema.tenant_attribute:
        item[schema.tenant_attribute] = SENTINEL_TENANT
    if schema.updated_at_attribute:
        item[schema.updated_at_attribute] = Decimal(str(round(now, 3)))
    return item


def run_sentinel(
    schema: SourceSchema,
    writer: SentinelWriter,
    search: SentinelSearch,
    telemetry: Telemetry,
    *,
    wait_s: float = TUNING.sentinel_wait_s,
    poll_s: float = TUNING.sentinel_poll_s,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    token: str | None = None,
) -> SentinelResult:
    """Write, wait until searchable, delete, wait until gone; publish both times."""
    started = wall()
    # Epoch milliseconds: a version above every earlier run's, whatever the schema's version kind.
    version = int(started * 1000)
    text = f"end-to-end check {token or uuid.uuid4().hex}"
    result = SentinelResult(version=version, started_at=started)

    t0 = clock()
    writer.put_item(sentinel_item(schema, version, text, started))
    try:
        seen = _wait(
            lambda hits: any(d == SENTINEL_DOC_ID and v == version for d, v in hits),
            text,
            search,
            result,
            deadline=t0 + wait_s,
            clock=clock,
            sleep=sleep,
            poll_s=poll_s,
        )
        result.freshness_s = clock() - t0
        result.freshness_timed_out = not seen
    finally:
        t1 = clock()
        writer.delete_item(SENTINEL_DOC_ID)  # never leave the item behind
    if result.freshness_timed_out:
        result.notes.append(
            f"the write (version {version}) was not searchable through the alias within {wait_s:.0f} s: "
            "stream, classify, queue, sync or index stalled; the delete was not measured"
        )
    else:
        gone = _wait(
            lambda hits: all(d != SENTINEL_DOC_ID for d, _ in hits),
            text,
            search,
            result,
            deadline=t1 + wait_s,
            clock=clock,
            sleep=sleep,
            poll_s=poll_s,
        )
        result.delete_s = clock() - t1
        result.delete_timed_out = not gone
        if not gone:
            result.notes.append(f"the delete was not applied to the index within {wait_s:.0f} s")
    _publish(telemetry, result)
    log = logger.warning if not result.ok else logger.info
    log("sentinel", **{k: v for k, v in result.to_dict().items() if k != "notes"}, notes=result.notes)
    return result


def _wait(
    done: Callable[[Sequence[tuple[str, int]]], bool],
    text: str,
    search: SentinelSearch,
    result: SentinelResult,
    *,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    poll_s: float,
) -> bool:
    """Poll until ``done(hits)`` or the deadline; a failing search is a "not yet" (noted once)."""
    while True:
        try:
            if done(search(text)):
                return True
        except DynembedError as exc:
            note = f"search failed while waiting: {exc}"
            if note not in result.notes:
                result.notes.append(note)
        if clock() >= deadline:
            return False
        sleep(min(poll_s, max(0.0, deadline - clock())))


def _publish(telemetry: Telemetry, result: SentinelResult) -> None:
    """Both times under the service dimension; a timed-out wait publishes nothing (missing data
    is what the alarms act on: a lower bound under the threshold would read as healthy)."""
    if result.freshness_s is not None and not result.freshness_timed_out:
        telemetry.gauge(METRICS.e2e_freshness, result.freshness_s, "Seconds")
    if result.delete_s is not None and not result.delete_timed_out:
        telemetry.gauge(METRICS.e2e_delete, result.delete_s, "Seconds")


def search_as_sentinel(svc: Services) -> SentinelSearch:
    """Search through the alias as the sentinel, within its tenant (the only caller allowed)."""

    tenant = SENTINEL_TENANT if svc.schema.tenant_attribute else None

    def run(text: str) -> list[tuple[str, int]]:
        response = svc.search(text, SENTINEL_PRINCIPAL, k=5, tenant=tenant, internal=True)
        return [(r.doc_id, r.source_version) for r in response.results]

    return run
