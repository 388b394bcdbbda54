"""audit: scheduled; source vs ledger vs index → OrphanedVectors, StaleDocuments,
MissingDocuments, freshness lag (gauges published by the audit itself, through Telemetry);
optionally enqueues repairs.

Read-only on the index: a repair only enqueues reconcile jobs (stale and missing docs). Stray
chunks are reported, never deleted from here (docs/operations.md, orphaned-vectors).

``{"explain": "DOC_ID"}`` explains one doc instead (dynembed.audit.explain): per generation, its
chunks against the source, and a verdict."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dynembed.core.observability import logger, metrics, tracer
from dynembed.wiring import Services, services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, svc: Services | None = None) -> dict[str, Any]:
    svc = svc or services()
    if event.get("explain"):
        explanation: dict[str, Any] = svc.explain(str(event["explain"])).to_dict()
        return explanation
    budget_s = max(10.0, context.get_remaining_time_in_millis() / 1000.0 - 30.0)
    report = svc.audit(
        queue=svc.queue,
        repair=bool(event.get("repair", False)),
        delete_orphans=False,
        sample=float(event.get("sample", 1.0)),
        time_budget_s=budget_s,
    )
    logger.info("audit", extra={**report.totals(), "complete": report.complete})
    if event.get("repair") and report.totals()["orphaned_vectors"]:
        logger.warning(
            "audit: orphaned chunks left in place (this function may not write the index)",
            extra={"examples": [g.examples.get("orphaned", []) for g in report.generations]},
        )
    return report.to_dict()
