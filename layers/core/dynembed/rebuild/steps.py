"""The rebuild workflow's steps, one plain function each, over ``Services``.

The state machine (``rebuild.asl.json``) calls them through the workflow Lambda with
``{"step": <name>, ...}``; ``run_step`` is the single router. Each step is safe to repeat
(Step Functions retries tasks), returns a small JSON summary (the 256 KB state limit), and
keeps the big records (progress, evaluation report) in the registry.

Invariants kept here: the active generation is never touched unless the gate passed
(``promote``), and every failure path (``mark_failed``) leaves the active generation serving.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from dynembed.core.config import METRICS
from dynembed.core.errors import (
    ConfigError,
    DynembedError,
    EmbeddingError,
    IndexWriteError,
    MalformedRecordError,
    TransientError,
    UnknownGenerationError,
)
from dynembed.core.models import Generation, GenerationStatus, ModelSpec, ReconcileJob
from dynembed.core.observability import logger
from dynembed.core.ports import ApprovalChannel
from dynembed.core.source_scan import iter_source, live_documents
from dynembed.core.telemetry import Telemetry
from dynembed.cost.estimate import RebuildEstimate
from dynembed.cost.tokens import counter_for
from dynembed.embedders.counting import CountingEmbedder
from dynembed.rebuild import generations, plan
from dynembed.rebuild.evaluate import ESTIMATE_KEY, evaluate_candidate, load_eval_set
from dynembed.rebuild.inputs import MAX_BACKFILL_SEGMENTS, RebuildInput, parse_rebuild_input
from dynembed.rebuild.progress import (
    MAX_FAILED_DOC_IDS,
    MAX_FAILED_DOC_IDS_TOTAL,
    BackfillProgress,
    ProgressStore,
    SegmentProgress,
    require,
)
from dynembed.wiring import Services

DOC_ERRORS: tuple[type[Exception], ...] = (MalformedRecordError, EmbeddingError, IndexWriteError)
"""Errors that belong to one document: recorded and skipped, so one bad doc never blocks the
backfill (I7). Anything else fails the page (and is retried if transient)."""


# ---- helpers ---------------------------------------------------------------------------------------


def _config(event: Mapping[str, Any]) -> RebuildInput:
    if "config" not in event:
        raise ConfigError("workflow event has no 'config' (the Validate step's output)")
    return parse_rebuild_input(event["config"])


def _generation(svc: Services, generation_id: str | None) -> Generation:
    if not generation_id:
        raise ConfigError("generation_id is missing")
    return svc.registry.get(generation_id)


# ---- Validate, Register, AddWriteTarget ------------------------------------------------------------


def validate(svc: Services, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check the input (every wrong field named) and fix the generation id for the whole run."""
    config = parse_rebuild_input(raw)
    if config.eval is None and not svc.settings.eval_dir:
        raise ConfigError(
            "invalid rebuild input: eval: a golden set is required (queries + qrels), "
            "or set DYNEMBED_EVAL_DIR on the workflow function"
        )
    if config.generation_id is None:
        config = config.model_copy(update={"generation_id": config.new_generation_id()})

    golden = load_eval_set(
        config, svc.settings, svc.blobs
    )  # a missing golden set fails now, not after the backfill
    logger.info("rebuild input valid", generation=config.generation_id, golden_queries=len(golden.queries))
    return {"config": config.model_dump(mode="json")}


def register(svc: Services, config: RebuildInput) -> dict[str, Any]:
    """Register the candidate (status building) and create its index. A re-run with the same
    generation id resumes it: same model, chunker, retrieval and vector settings required,
    progress kept."""
    gen_id = str(config.generation_id)
    spec, chunker = config.model_spec(), config.chunker_spec()
    try:
        existing: Generation | None = svc.registry.get(gen_id)
    except UnknownGenerationError:
        existing = None
    resumed = existing is not None
    if existing is not None:
        if existing.model != spec or existing.chunker != chunker:
            raise ConfigError(
                f"generation_id: {gen_id} exists with model {existing.model.name} and chunker "
                f"{existing.chunker.version}; this input asks for {spec.name} and {chunker.version}: "
                "omit generation_id to start a new generation"
            )
        if existing.retrieval != config.retrieval or existing.vectors != config.vectors:
            raise ConfigError(
                f"generation_id: {gen_id} exists with retrieval {existing.retrieval.describe()} and "
                f"vectors {existing.vectors.describe()}; this input asks for {config.retrieval.describe()} "
                f"and {config.vectors.describe()}: omit generation_id to start a new generation"
            )
        if existing.status in (GenerationStatus.ACTIVE, GenerationStatus.STANDBY, GenerationStatus.RETIRED):
            raise ConfigError(
                f"generation_id: {gen_id} is {existing.status.value}; only a building, evaluating or "
                "failed generation can be resumed"
            )
        if existing.status is not GenerationStatus.BUILDING:
            svc.registry.update(gen_id, status=GenerationStatus.BUILDING)
        svc.index.ensure_index(existing)
    else:
        candidate = generations.new_generation(
            spec,
            chunker,
            svc.settings.index_prefix,
            schema_version=svc.schema.schema_version,
            generation_id=gen_id,
            retrieval=config.retrieval,
            vectors=config.vectors,
        )
        generations.create(svc.registry, svc.index, candidate)

    segments = plan.segments_for(
        svc.source.approximate_count() if config.backfill_segments is None else None,
        config.backfill_segments,
        MAX_BACKFILL_SEGMENTS,
    )

    def start_or_resume(progress: BackfillProgress | None) -> BackfillProgress:
        if progress is None:
            return BackfillProgress.fresh(segments, config.page_size)
        # Scan segments are only meaningful with the same segment count: keep the first run's.
        resumed_segments = {n: s.model_copy(update={"stopped": None}) for n, s in progress.segments.items()}
        return progress.model_copy(update={"runs": progress.runs + 1, "segments": resumed_segments})

    progress = svc.progress.change(gen_id, start_or_resume)
    gen = svc.registry.get(gen_id)
    logger.info(
        "generation registered",
        generation=gen_id,
        resumed=resumed,
        pending_segments=progress.pending_segments,
        docs_done=progress.total("docs"),
    )
    return {
        "generation_id": gen_id,
        "index_name": gen.index_name,
        "retrieval": gen.retrieval.describe(),
        "vectors": gen.vectors.describe(),
        "resumed": resumed,
        "total_segments": progress.total_segments,
        "max_concurrency": plan.concurrency_for(spec, progress.total_segments, config.backfill_concurrency),
        "segments": progress.pending_segments,
        "docs_done": progress.total("docs"),
    }


# ---- Estimate ---------------------------------------------------------------------------------------


def estimate_for(svc: Services, config: RebuildInput) -> RebuildEstimate:
    """The rebuild's estimate (``dynembed.cost.estimate``) over this deployment's source, cache
    and price table; needs no generation, so ``dynembed rebuild --estimate`` runs it alone."""
    from dynembed.cost.estimate import estimate_rebuild
    from dynembed.cost.prices import load_prices
    from dynembed.embedders.catalog import get_embedder

    spec = config.model_spec()
    count = svc.source.approximate_count()
    segments = plan.segments_for(count, config.backfill_segments, MAX_BACKFILL_SEGMENTS)
    return estimate_rebuild(
        source=svc.source,
        schema=svc.schema,
        cache=svc.cache,
        model=spec,
        chunker=config.chunker_spec(),
        concurrency=plan.concurrency_for(spec, segments, config.backfill_concurrency),
        prices=load_prices(svc.settings.prices),
        # A probe of the model's speed, apart from the pipeline's embedders (and their counts).
        embedder_for=(lambda s: get_embedder(s.name)) if spec.provider != "bedrock" else None,
        page_size=config.page_size,
        pages_per_task=config.pages_per_task,
        sample_items=config.estimate_sample,
    )


def estimate(svc: Services, config: RebuildInput) -> dict[str, Any]:
    """Estimate the rebuild before anything is embedded; the figures go on the candidate (the
    report compares them with the actual ones) and into the execution's state and output."""
    result = estimate_for(svc, config)
    gen = _generation(svc, config.generation_id)
    report = dict(gen.report or {})
    report[ESTIMATE_KEY] = result.model_dump(mode="json")
    svc.registry.update(gen.id, report=report)
    logger.info("rebuild estimated", extra={"generation": gen.id, "estimate": result.lines()})
    return {
        "generation_id": gen.id,
        "summary": result.lines(),
        "items": result.items,
        "docs": result.docs,
        "chunks": result.chunks,
        "tokens": result.tokens,
        "texts_new": result.texts_new,
        "texts_reused": result.texts_reused,
        "tokens_new": result.tokens_new,
        "cost_usd": result.cost.total_usd,
        "time_s": result.time.total_s,
    }


def add_write_target(svc: Services, config: RebuildInput) -> dict[str, Any]:
    """From now on every live change reaches the candidate too (before the backfill starts, so
    no edit can fall between the scan and the stream)."""
    gen = svc.registry.update(str(config.generation_id), write_target=True)
    targets = [g.id for g in svc.registry.list() if g.write_target]
    return {"generation_id": gen.id, "write_targets": targets}


# ---- Backfill ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class PageResult:
    docs: int
    computed: int
    reused: int
    failed: dict[str, str]
    tokens: int = 0


def backfill_pages(
    svc: Services,
    config: RebuildInput,
    segment: int,
    time_budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Reconcile pages of one scan segment straight into the candidate, recording progress
    after each page; stops after ``pages_per_task`` pages, at the segment's end, or when the
    next page might not fit in the time budget. A repeat of a page (crash before its progress
    was recorded) costs reads only: its docs are already at their version in the ledger."""
    gen_id = str(config.generation_id)
    gen = _generation(svc, gen_id)
    if gen.status is not GenerationStatus.BUILDING:
        raise DynembedError(f"generation {gen_id} is {gen.status.value}, not building: backfill stopped")
    store = svc.progress
    progress = require(store.load(gen_id), gen_id)
    if segment not in progress.segments:
        raise ConfigError(f"segment {segment} is not one of the {progress.total_segments} scan segments")
    state = progress.segments[segment]
    started, slowest, pages = clock(), 0.0, 0
    while not state.done and pages < config.pages_per_task:
        if pages and clock() - started + 1.5 * slowest > time_budget_s:
            break
        page_started = clock()
        items, last_key = svc.source.scan_segment(
            segment, progress.total_segments, state.last_key, progress.page_size
        )
        result = _reconcile_page(svc, gen, items)
        state = _record_page(store, gen_id, segment, last_key, result)
        pages += 1
        slowest = max(slowest, clock() - page_started)
    return {"segment": segment, "done": state.done, "pages": pages, "docs": state.docs}


def _reconcile_page(svc: Services, gen: Generation, items: list[dict[str, Any]]) -> PageResult:
    schema = svc.schema
    failed: dict[str, str] = {}
    jobs: list[ReconcileJob] = []
    # The scan read the items consistently: reconcile need not read the well-formed ones again.
    scanned: dict[str, dict[str, Any]] = {}
    no_id = 0
    for number, item in enumerate(items):
        try:
            doc_id = schema.id_of(item)
        except MalformedRecordError as exc:
            # No usable id: nothing of it can be in the index; recorded under a label (the
            # raw id may be a map, never shown as a Python repr).
            failed[f"<item without a usable id #{number}>"] = str(exc)
            no_id += 1
            continue
        if schema.problems(item):
            # Its reconcile hides whatever the candidate holds of it and fails with the reason.
            jobs.append(
                ReconcileJob(doc_id=doc_id, min_source_version=0, reason="backfill", generations=[gen.id])
            )
            continue
        scanned[doc_id] = item
        jobs.append(
            ReconcileJob(
                doc_id=doc_id,
                min_source_version=schema.version_of(item, doc_id),
                reason="backfill",
                source_updated_at=schema.updated_at_of(item),
                generations=[gen.id],
                tenant=schema.tenant_of(item),
                source_type=schema.source_type_of(item),
            )
        )
    # A page-local telemetry, so the reuse figures are this page's alone (pumps and other
    # segments run concurrently in the same process locally, in other sandboxes on AWS).
    page_telemetry = Telemetry()
    counter = counter_for(gen.model.name)
    counting: list[CountingEmbedder] = []

    def embedder_for(spec: ModelSpec) -> CountingEmbedder:
        counting.append(CountingEmbedder(svc.embedder_for(spec), token_counter=counter.count))
        return counting[-1]

    reconciler = dataclasses.replace(svc.reconciler(), telemetry=page_telemetry, embedder_for=embedder_for)
    outcomes = reconciler.reconcile(jobs, prefetched=scanned)
    errors = [o for o in outcomes if o.error is not None]
    transient = [o for o in errors if isinstance(o.error, TransientError)]
    if transient:
        raise TransientError(
            f"backfill of {gen.id}: {len(transient)} docs hit transient errors "
            f"(first: {transient[0].job.doc_id}: {transient[0].error}); the page is retried"
        )
    systemic = [o for o in errors if not isinstance(o.error, DOC_ERRORS)]
    # Every readable doc of the page failing is a systemic fault (a model or index down), not
    # bad data; malformed items are bad data however many there are.
    readable = [o for o in outcomes if not isinstance(o.error, MalformedRecordError)]
    if systemic or (len(readable) > 1 and all(o.error is not None for o in readable)):
        first = (systemic or readable)[0]
        raise DynembedError(
            f"backfill of {gen.id}: {len(errors)} of {len(jobs)} docs failed "
            f"(first: {first.job.doc_id}: {type(first.error).__name__}: {first.error})"
        ) from first.error
    failed.update({o.job.doc_id: f"{type(o.error).__name__}: {o.error}" for o in errors})
    computed = int(page_telemetry.get(METRICS.embeddings_computed))
    reused = int(page_telemetry.get(METRICS.embeddings_skipped))
    svc.telemetry.count(METRICS.embeddings_computed, computed)
    svc.telemetry.count(METRICS.embeddings_skipped, reused)
    svc.telemetry.count(METRICS.malformed_items, page_telemetry.get(METRICS.malformed_items) + no_id)
    for doc_id, reason in failed.items():
        logger.warning("backfill skipped a document", generation=gen.id, doc_id=doc_id, reason=reason)
    tokens = sum(c.document_tokens for c in counting)
    return PageResult(docs=len(items), computed=computed, reused=reused, failed=failed, tokens=tokens)


def _record_page(
    store: ProgressStore, gen_id: str, segment: int, last_key: dict[str, Any] | None, result: PageResult
) -> SegmentProgress:
    def advance(progress: BackfillProgress | None) -> BackfillProgress:
        current = require(progress, gen_id)
        before = current.segments[segment]
        elsewhere = sum(len(s.failed_docs) for n, s in current.segments.items() if n != segment)
        keep = max(0, min(MAX_FAILED_DOC_IDS, MAX_FAILED_DOC_IDS_TOTAL - elsewhere))
        failed_docs = list(dict.fromkeys([*before.failed_docs, *result.failed]))[
            : max(keep, len(before.failed_docs))
        ]
        after = SegmentProgress(
            last_key=last_key,
            done=last_key is None,
            pages=before.pages + 1,
            docs=before.docs + result.docs,
            computed=before.computed + result.computed,
            reused=before.reused + result.reused,
            tokens=before.tokens + result.tokens,
            failures=before.failures + len(result.failed),
            failed_docs=failed_docs,
        )
        segments = {**current.segments, segment: after}
        finished = time.time() if all(s.done for s in segments.values()) else None
        return current.model_copy(update={"segments": segments, "finished_at": finished})

    return store.change(gen_id, advance).segments[segment]


def segment_failed(
    svc: Services, config: RebuildInput, segment: int, error: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A segment's child execution is about to fail: keep its reason on the progress record,
    since the parent execution only learns that a child failed, not why."""
    gen_id = str(config.generation_id)
    reason = _failure_reason(dict(error or {}))

    def stop(progress: BackfillProgress | None) -> BackfillProgress:
        current = require(progress, gen_id)
        if segment not in current.segments:
            return current
        stopped = current.segments[segment].model_copy(update={"stopped": reason})
        return current.model_copy(update={"segments": {**current.segments, segment: stopped}})

    svc.progress.change(gen_id, stop)
    logger.warning("backfill segment failed", generation=gen_id, segment=segment, reason=reason)
    return {"segment": segment, "reason": reason}


# ---- CatchUp ----------------------------------------------------------------------------------------


def catchup_status(
    svc: Services, config: RebuildInput, checks: int, now: float | None = None
) -> dict[str, Any]:
    """Has the candidate caught up with the source? Pending jobs in the queue, and docs whose
    candidate ledger entry is missing, older than the source, unfinished, or not yet deleted.

    Docs the batched update policy holds on purpose are not waited for (the active generation
    lags on them just as much), nor docs the backfill recorded as unindexable. When nothing is
    in the queue but docs are behind (changes made while the candidate was not a write target,
    e.g. between a failed run and its resume), repair jobs for the candidate are enqueued."""
    gen_id = str(config.generation_id)
    now = time.time() if now is None else now
    progress = require(svc.progress.load(gen_id), gen_id)
    if not progress.done:
        raise DynembedError(
            f"generation {gen_id}: backfill segments {progress.pending_segments} not finished"
        )
    pending_jobs = svc.queue.depth()
    live = live_documents(svc.schema, svc.source).docs
    entries = {e.doc_id: e for e in svc.ledger.scan(gen_id)}
    behind: dict[str, int] = {}
    for doc_id, (version, _updated, _content) in live.items():
        entry = entries.get(doc_id)
        unfinished = entry is not None and set(entry.pending_keys) - set(entry.chunk_keys)
        if entry is None or entry.source_version < version or unfinished or entry.state != "committed":
            behind[doc_id] = version
    for doc_id, entry in entries.items():
        if doc_id not in live and entry.state == "committed" and (entry.chunk_keys or entry.pending_keys):
            behind[doc_id] = entry.source_version  # deleted in the source, not yet in the candidate
    held = _held_doc_ids(svc)
    excused = held | set(progress.failed_docs)
    waiting = {d: v for d, v in behind.items() if d not in excused}
    updated = [live[d][1] for d in waiting if d in live]
    lag_s = max((now - u for u in updated if u is not None), default=0.0)
    repairs = 0
    if waiting and pending_jobs == 0:
        jobs = [
            ReconcileJob(
                doc_id=d,
                min_source_version=v if d in live else 0,
                reason="rebuild catch-up",
                generations=[gen_id],
            )
            for d, v in sorted(waiting.items())
        ]
        svc.queue.send(jobs)
        repairs = len(jobs)
    caught_up = pending_jobs == 0 and not waiting
    checks += 1
    result: dict[str, Any] = {
        "caught_up": caught_up,
        "checks": checks,
        "exhausted": not caught_up and checks >= config.catchup_max_checks,
        "pending_jobs": pending_jobs,
        "docs_behind": len(waiting),
        "held_docs": len(held & set(behind)),
        "failed_docs": len(progress.failed_docs),
        "repairs_enqueued": repairs,
        "lag_s": round(lag_s, 3),
    }
    logger.info("catch-up check", extra={"generation": gen_id, **result})
    return result


def _held_doc_ids(svc: Services) -> set[str]:
    return {job.doc_id for job, _ in svc.held.due(flush_all=True)}


# ---- Approval, Promote, Reject, MarkFailed ------------------------------------------------------------


APPROVAL_STAGES = {"estimate": GenerationStatus.BUILDING, "promotion": GenerationStatus.EVALUATING}
"""What a person can be asked to approve, and the candidate's status while it waits."""


def request_approval(
    svc: Services, config: RebuildInput, task_token: str, stage: str = "promotion"
) -> dict[str, Any]:
    """Park the task token on the candidate; ``dynembed approve`` (or SendTaskSuccess) answers.
    ``stage`` is ``estimate`` (before the backfill spends anything) or ``promotion``."""
    if stage not in APPROVAL_STAGES:
        raise ConfigError(f"approval stage {stage!r}: expected one of {sorted(APPROVAL_STAGES)}")
    gen = _generation(svc, config.generation_id)
    report = dict(gen.report or {})
    report["approval"] = {
        "task_token": task_token,
        "requested_at": time.time(),
        "approved": None,
        "stage": stage,
    }
    svc.registry.update(gen.id, report=report)
    logger.info("approval requested", generation=gen.id, stage=stage)
    return {"generation_id": gen.id, "approval": "requested", "stage": stage}


def answer_approval(
    svc: Services, sfn: ApprovalChannel, generation_id: str, *, approved: bool, by: str, reason: str = ""
) -> dict[str, Any]:
    """Record a person's decision on the candidate and resume the waiting workflow."""
    gen = svc.registry.get(generation_id)
    approval = dict((gen.report or {}).get("approval") or {})
    token = approval.get("task_token")
    waiting_status = APPROVAL_STAGES.get(str(approval.get("stage") or "promotion"))
    if not token or approval.get("approved") is not None or gen.status is not waiting_status:
        raise DynembedError(f"generation {generation_id} is not waiting for an approval")
    decision = {"approved": approved, "by": by, "reason": reason, "at": time.time()}
    report = dict(gen.report or {})
    report["approval"] = {**approval, **decision}
    svc.registry.update(generation_id, report=report)
    sfn.send_task_success(taskToken=token, output=json.dumps(decision))
    return {"generation_id": generation_id, **decision}


def promote(svc: Services, config: RebuildInput) -> dict[str, Any]:
    """One ``_aliases`` request, then the registry: the candidate serves, the old active becomes
    standby and stays a write target (rollback needs no reprocessing). Refuses a candidate whose
    stored report says the gate failed, or that still waits for a person's approval."""
    gen = _generation(svc, config.generation_id)
    report = gen.report or {}
    if gen.status is not GenerationStatus.ACTIVE:
        if not report.get("gate_passed"):
            raise DynembedError(f"refusing to promote {gen.id}: its evaluation gate did not pass")
        if config.require_approval and (report.get("approval") or {}).get("approved") is not True:
            raise DynembedError(f"refusing to promote {gen.id}: no one approved it")
    move = generations.promote(svc.registry, svc.index, svc.settings.index_alias, gen.id)
    logger.info("promoted", generation=gen.id, alias=move.alias, before=move.before, after=move.after)
    return dataclasses.asdict(move)


def reject(svc: Services, config: RebuildInput, reasons: list[str] | None) -> dict[str, Any]:
    """Failed and out of the write targets; the index stays for inspection; active untouched."""
    reason = "; ".join(reasons or []) or "rejected"
    gen = generations.reject(svc.registry, str(config.generation_id), reason)
    logger.info("rejected", generation=gen.id, reason=reason)
    return {"generation_id": gen.id, "status": gen.status.value, "reason": reason}


def mark_failed(
    svc: Services, config: Mapping[str, Any] | None, error: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Where every Catch leads. The candidate becomes failed and leaves the write targets; the
    active generation keeps serving. If a promotion got as far as moving the alias but not the
    registry, the alias goes back to the registered active generation first."""
    error = dict(error or {})
    reason = _failure_reason(error)
    gen_id = (config or {}).get("generation_id")
    if not gen_id:
        return {"generation_id": None, "status": "not registered", "reason": reason}
    try:
        gen = svc.registry.get(gen_id)
    except UnknownGenerationError:
        return {"generation_id": gen_id, "status": "not registered", "reason": reason}
    reason = _with_segment_reasons(reason, gen)
    if gen.status is GenerationStatus.ACTIVE:
        logger.warning("rebuild failed after its promotion completed; nothing undone", generation=gen_id)
        return {"generation_id": gen_id, "status": gen.status.value, "reason": reason}
    if gen.status not in (GenerationStatus.BUILDING, GenerationStatus.EVALUATING):
        # Not a candidate of this run (e.g. Register refused a standby's id): leave it alone.
        return {"generation_id": gen_id, "status": gen.status.value, "reason": reason}
    alias = svc.settings.index_alias
    active = generations.find_active(svc.registry)
    restored = False
    if active is not None and svc.index.alias_target(alias) == gen.index_name:
        svc.index.swap_alias(alias, active.index_name, gen.index_name)
        restored = True
    report = dict(gen.report or {})
    report["failed_reason"] = reason
    svc.registry.update(gen_id, status=GenerationStatus.FAILED, write_target=False, report=report)
    logger.warning("rebuild failed", generation=gen_id, reason=reason, alias_restored=restored)
    return {"generation_id": gen_id, "status": "failed", "reason": reason, "alias_restored": restored}


def _with_segment_reasons(reason: str, gen: Generation) -> str:
    """A failed backfill child leaves only "a child failed" to the parent: add what the
    children recorded (``segment_failed``)."""
    progress = BackfillProgress.from_record(gen.backfill)
    stopped = [
        f"segment {n}: {s.stopped}"
        for n, s in sorted((progress.segments if progress else {}).items())
        if s.stopped
    ]
    if not stopped:
        return reason
    return f"{reason}; {'; '.join(stopped[:3])}"[:2000]


def _failure_reason(error: Mapping[str, Any]) -> str:
    """``Error: message`` from a Catch's ``{"Error", "Cause"}`` (Cause is the Lambda's JSON)."""
    name = str(error.get("Error") or "Error")
    cause = error.get("Cause")
    message = ""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
            message = str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else cause
        except json.JSONDecodeError:
            message = cause
    return f"{name}: {message}"[:2000] if message else name


# ---- actions of their own: rollback, retire, targeted backfill ----------------------------------------


def rollback(svc: Services) -> dict[str, Any]:
    """Serve the standby again: one alias request, no reprocessing (it stayed a write target)."""
    move = generations.rollback(svc.registry, svc.index, svc.settings.index_alias)
    logger.info("rolled back", alias=move.alias, before=move.before, after=move.after)
    return dataclasses.asdict(move)


def retire(svc: Services, generation_id: str) -> dict[str, Any]:
    """Delete a standby's or failed generation's index and ledger rows; no rollback to it after."""
    gen = generations.retire(svc.registry, svc.index, generation_id)
    removed = svc.ledger.delete_generation(generation_id)
    return {"generation_id": gen.id, "status": gen.status.value, "ledger_rows_deleted": removed}


def targeted_backfill(
    svc: Services,
    *,
    tenant: str | None = None,
    source_type: str | None = None,
    ids: list[str] | None = None,
) -> dict[str, Any]:
    """Reconcile a subset (a tenant, a source type or a list of ids) into the current write
    targets, through the jobs queue and the normal reconcile path; no new generation."""
    chosen = [
        name for name, value in (("tenant", tenant), ("source_type", source_type), ("ids", ids)) if value
    ]
    if len(chosen) != 1:
        raise ConfigError("targeted backfill: give exactly one of tenant, source_type or ids")
    schema = svc.schema
    jobs: list[ReconcileJob] = []
    malformed = 0
    if ids:
        for doc_id in dict.fromkeys(i.strip() for i in ids if i.strip()):
            state = schema.state_of(svc.source.get_item(doc_id), doc_id)
            malformed += state.kind == "malformed"
            jobs.append(
                ReconcileJob(doc_id=doc_id, min_source_version=state.version or 0, reason="targeted backfill")
            )
    else:
        if tenant and not schema.tenant_attribute:
            raise ConfigError("tenant: the source schema has no tenant_attribute")
        if source_type and not schema.source_type_attribute:
            raise ConfigError("source_type: the source schema has no source_type_attribute")
        for item in iter_source(svc.source):
            label = schema.label_of(item)
            if label is None:
                malformed += 1  # no usable id: nothing of it can be indexed
                continue
            doc_id = label
            if schema.problems(item):
                # Its tenant or type may be unreadable: enqueue it, its reconcile hides it.
                malformed += 1
                jobs.append(ReconcileJob(doc_id=doc_id, min_source_version=0, reason="targeted backfill"))
                continue
            if tenant and schema.tenant_of(item) != tenant:
                continue
            if source_type and schema.source_type_of(item) != source_type:
                continue
            jobs.append(
                ReconcileJob(
                    doc_id=doc_id,
                    min_source_version=schema.version_of(item, doc_id),
                    reason="targeted backfill",
                    source_updated_at=schema.updated_at_of(item),
                    tenant=schema.tenant_of(item),
                    source_type=schema.source_type_of(item),
                )
            )
    if jobs:
        svc.queue.send(jobs)
    targets = [g.id for g in svc.registry.list() if g.write_target]
    logger.info(
        "targeted backfill",
        selector=chosen[0],
        jobs=len(jobs),
        malformed_items=malformed,
        write_targets=targets,
    )
    return {
        "selector": chosen[0],
        "jobs_enqueued": len(jobs),
        "malformed_items": malformed,
        "write_targets": targets,
    }


# ---- the router ---------------------------------------------------------------------------------------

StepRunner = Callable[[Services, Mapping[str, Any], float], Any]
"""(services, the workflow event, seconds left in the invocation) -> the step's JSON result."""


def _with_config(run: Callable[[Services, RebuildInput, Mapping[str, Any], float], Any]) -> StepRunner:
    """A step of the state machine proper: it gets the Validate step's output, parsed."""
    return lambda svc, event, remaining_s: run(svc, _config(event), event, remaining_s)


def _ids(event: Mapping[str, Any]) -> list[str] | None:
    ids = event.get("ids")
    return ids.split(",") if isinstance(ids, str) else ids


STEPS: dict[str, StepRunner] = {
    "validate": lambda svc, event, _: validate(svc, event.get("input") or {}),
    "register": _with_config(lambda svc, c, event, _: register(svc, c)),
    "add_write_target": _with_config(lambda svc, c, event, _: add_write_target(svc, c)),
    "backfill_page": _with_config(
        lambda svc, c, event, remaining_s: backfill_pages(
            svc, c, int(event["segment"]), time_budget_s=max(10.0, remaining_s - 60.0)
        )
    ),
    "catchup_status": _with_config(
        lambda svc, c, event, _: catchup_status(svc, c, int(event.get("checks") or 0))
    ),
    "evaluate": _with_config(lambda svc, c, event, _: evaluate_candidate(svc, c)),
    "estimate": _with_config(lambda svc, c, event, _: estimate(svc, c)),
    "segment_failed": _with_config(
        lambda svc, c, event, _: segment_failed(svc, c, int(event["segment"]), event.get("error"))
    ),
    "request_approval": _with_config(
        lambda svc, c, event, _: request_approval(
            svc, c, str(event.get("task_token") or ""), str(event.get("stage") or "promotion")
        )
    ),
    "promote": _with_config(lambda svc, c, event, _: promote(svc, c)),
    "reject": _with_config(lambda svc, c, event, _: reject(svc, c, list(event.get("reasons") or []))),
    "mark_failed": lambda svc, event, _: mark_failed(svc, event.get("config"), event.get("error")),
    # Actions ops invoke directly (not states of the machine).
    "rollback": lambda svc, event, _: rollback(svc),
    "retire": lambda svc, event, _: retire(svc, str(event.get("generation_id") or "")),
    "targeted_backfill": lambda svc, event, _: targeted_backfill(
        svc, tenant=event.get("tenant"), source_type=event.get("source_type"), ids=_ids(event)
    ),
}
"""Every step the workflow function runs, by the ``step`` name the state machine sends: the
only list of them (the ASL test checks each Task names one of these)."""

STEP_NAMES = tuple(STEPS)


def run_step(event: Mapping[str, Any], svc: Services, remaining_s: float = 900.0) -> Any:
    """Route a workflow event to its step. Unknown steps are configuration errors."""
    step = str(event.get("step"))
    if step not in STEPS:
        raise ConfigError(f"unknown workflow step {step!r}; known steps: {', '.join(sorted(STEPS))}")
    return STEPS[step](svc, event, remaining_s)
