"""The whole pipeline on one machine: moto (DynamoDB, Streams, SQS, Step Functions,
CloudWatch) as a threaded server, osmem-server for the index, pumps for the event sources, and
the real handlers. Resources are created from ``dynembed.core.config`` — the names and settings the
CDK stack uses."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from dynembed.core.config import KEYS, NAMES, TUNING
from dynembed.core.errors import ConfigError, DynembedError
from dynembed.core.observability import logger
from dynembed.core.schema import SourceSchema
from dynembed.wiring import Services, reset_services
from dynembed_ops import paths
from dynembed_ops.local.dynamodb_process import DynamoDbProcess
from dynembed_ops.local.lambda_runtime import invoke
from dynembed_ops.local.persistence import DataDir, SourceJournal, journal_pump, put_items, registry_rows
from dynembed_ops.local.pumps import SqsPump, StreamPump

REGION = "us-east-1"
ACCOUNT = "123456789012"
SCHEDULED_EVENT: dict[str, Any] = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
"""What EventBridge sends a scheduled function (the fields the handlers ignore left out)."""
STATE_DIR_ENV = "DYNEMBED_STATE_DIR"
STATE_DIR_NAME = ".dynembed"
STATE_FILE_NAME = "stack.json"
TELEMETRY_FILE_NAME = "telemetry.json"


def state_dir_for_up(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where ``dynembed up`` writes how to reach it: ``$DYNEMBED_STATE_DIR``; else the checkout's
    root ``.dynembed`` when run anywhere inside the checkout; else ``./.dynembed``."""
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    here = (cwd or Path.cwd()).resolve()
    root = paths.REPO_ROOT
    if (root / "pyproject.toml").exists() and here.is_relative_to(root):
        return root / STATE_DIR_NAME
    return here / STATE_DIR_NAME


def find_state_dir(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The state dir of the running stack: ``$DYNEMBED_STATE_DIR``, else the nearest
    ``.dynembed/stack.json`` from ``cwd`` upward. Raises, saying where it looked, when none is."""
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV):
        state = Path(env[STATE_DIR_ENV])
        if (state / STATE_FILE_NAME).exists():
            return state
        raise DynembedError(
            f"no local stack is running: {STATE_DIR_ENV}={state} holds no {STATE_FILE_NAME}; start one "
            "with `dynembed up` in another terminal"
        )
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / STATE_DIR_NAME / STATE_FILE_NAME).exists():
            return folder / STATE_DIR_NAME
    raise DynembedError(
        f"no local stack is running: no {STATE_DIR_NAME}/{STATE_FILE_NAME} in {here} or any folder above "
        f"it; start one with `dynembed up` in another terminal (or set {STATE_DIR_ENV} to its state dir)"
    )


@dataclass(frozen=True)
class Restored:
    """What ``--data-dir`` brought back at start."""

    path: Path
    docs: int
    generations: int
    interrupted: list[str]
    """Rebuilds that were running when the stack stopped, now failed."""
    torn_tail: bool
    """The journal's last line was cut short by a kill and left out."""


@dataclass
class StackInfo:
    """What another process needs to talk to a running stack (written by ``dynembed up``)."""

    aws_url: str
    opensearch_url: str
    region: str
    stream_arn: str
    jobs_queue_url: str
    jobs_dlq_url: str
    stream_failures_queue_url: str
    schema: dict[str, Any]
    pid: int = 0
    shadow_queue_url: str = ""
    query_sample_rate: float = 1.0
    """Locally every live search is a sample (a laptop sees few), unless ``up`` says otherwise."""
    shadow_sample_rate: float = 1.0
    query_keep_text: bool = False
    dynamodb_url: str = ""
    """DynamoDB's own endpoint (``dynembed_ops.local.dynamodb_process``); ``aws_url`` forwards
    DynamoDB requests to it, so either serves; "" when DynamoDB is inside the main server."""

    def env(self) -> dict[str, str]:
        dynamodb = (
            {
                "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_url,
            }
            if self.dynamodb_url
            else {}
        )
        return {
            "AWS_ENDPOINT_URL": self.aws_url,
            **dynamodb,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "DYNEMBED_REGION": self.region,
            "DYNEMBED_SOURCE_TABLE": NAMES.source_table,
            "DYNEMBED_LEDGER_TABLE": NAMES.ledger_table,
            "DYNEMBED_REGISTRY_TABLE": NAMES.registry_table,
            "DYNEMBED_EMBEDDING_CACHE_TABLE": NAMES.embedding_cache_table,
            "DYNEMBED_HELD_JOBS_TABLE": NAMES.held_jobs_table,
            "DYNEMBED_INDEX_ALIAS": NAMES.index_alias,
            "DYNEMBED_INDEX_PREFIX": NAMES.index_prefix,
            "DYNEMBED_OPENSEARCH_ENDPOINT": self.opensearch_url,
            "DYNEMBED_OPENSEARCH_AUTH": "none",
            "DYNEMBED_KNN_MODE": "exact",
            # Evaluation reports outlive the run, beside the stack's state (an override wins).
            "DYNEMBED_REPORTS_DIR": os.environ.get("DYNEMBED_REPORTS_DIR")
            or str((state_dir_for_up() / "reports").resolve()),
            "DYNEMBED_JOBS_QUEUE_URL": self.jobs_queue_url,
            "DYNEMBED_JOBS_DLQ_URL": self.jobs_dlq_url,
            "DYNEMBED_STREAM_FAILURES_QUEUE_URL": self.stream_failures_queue_url,
            "DYNEMBED_SHADOW_QUEUE_URL": self.shadow_queue_url,
            "DYNEMBED_QUERY_SAMPLE_RATE": str(self.query_sample_rate),
            "DYNEMBED_SHADOW_SAMPLE_RATE": str(self.shadow_sample_rate),
            "DYNEMBED_QUERY_SIGNALS_CACHE_S": "1",
            "DYNEMBED_QUERY_KEEP_TEXT": "true" if self.query_keep_text else "false",
            "DYNEMBED_SOURCE_SCHEMA": json.dumps(self.schema),
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            "HF_HUB_OFFLINE": "1",
        }

    def apply(self) -> None:
        os.environ.update(self.env())
        # The Powertools logger reads its level once, when first imported; set it again here.
        logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])
        reset_services()

    def save(self, state_dir: Path) -> Path:
        path = state_dir / STATE_FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, state_dir: Path | None = None) -> StackInfo:
        """The running stack (found by ``find_state_dir`` unless given), or a clear error."""
        path = (state_dir or find_state_dir()) / STATE_FILE_NAME
        if not path.exists():
            raise DynembedError(f"no local stack is running: no {path}; start one with `dynembed up`")
        info = cls(**json.loads(path.read_text()))
        endpoints = [info.aws_url, info.opensearch_url, *([info.dynamodb_url] if info.dynamodb_url else [])]
        if not all(_reachable(url) for url in endpoints):
            raise DynembedError(
                f"the local stack in {path} is not answering (stopped?): start one with `dynembed up`"
            )
        return info


def _reachable(url: str) -> bool:
    host, port = url.split("//", 1)[1].split(":")
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port.split("/")[0]))) == 0


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, what: str) -> None:
    with contextlib.closing(socket.socket()) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} for {what} is in use: choose another with --port") from exc


class LocalStack:
    def __init__(
        self,
        schema: SourceSchema | None = None,
        aws_port: int | None = None,
        opensearch_port: int | None = None,
        retry_delay_s: int = 0,
        data_dir: Path | None = None,
        query_sample_rate: float = 1.0,
        shadow_sample_rate: float = 1.0,
        query_keep_text: bool = False,
        dynamodb_process: bool = True,
        sync_concurrency: int = 2,
    ) -> None:
        """With ``data_dir``, the source table and the registry are kept there and restored at
        start (``dynembed_ops.local.persistence``); the schema must match what the dir holds.
        ``dynamodb_process`` serves DynamoDB from a child process (``dynamodb_process``), beside
        the handlers instead of under their interpreter lock; the request meter, which reads
        moto's tables to size each write, needs it in this process (False). ``sync_concurrency``
        sync invocations run at once, each on its own batch, as Lambda's SQS event source runs
        them (with DynamoDB in its own process, one's requests overlap another's work)."""
        if sync_concurrency < 1:
            raise ConfigError(f"sync_concurrency must be at least 1, not {sync_concurrency}")
        self.sync_concurrency = sync_concurrency
        self.data = DataDir(data_dir).lock() if data_dir is not None else None
        self.schema = self.data.schema_for(schema) if self.data is not None else (schema or SourceSchema())
        self.signals = (query_sample_rate, shadow_sample_rate, query_keep_text)
        self.aws_port = aws_port or free_port()
        self.opensearch_port = opensearch_port or free_port()
        self.retry_delay_s = retry_delay_s
        self._moto: Any = None
        self._osmem: Any = None
        self._dynamodb: DynamoDbProcess | None = DynamoDbProcess(free_port()) if dynamodb_process else None
        self._saved_environ: dict[str, str] | None = None
        self.info: StackInfo | None = None
        self.stream_pump: StreamPump | None = None
        self.sqs_pump: SqsPump | None = None
        self.journal_pump: StreamPump | None = None
        self.restored: Restored | None = None
        self.shadow_pump: SqsPump | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._schedules_stop = threading.Event()
        self._schedules: list[threading.Thread] = []

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LocalStack:
        from moto.server import ThreadedMotoServer
        from osmem_server import OsmemServer

        if self.aws_port:
            ensure_port_free(self.aws_port, "the AWS endpoint (moto)")
        ensure_port_free(self.opensearch_port, "the OpenSearch endpoint (osmem)")
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto keeps its backends per process: a new stack starts from empty tables and queues.
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        from dynembed_ops.local import moto_patches

        moto_patches.apply()
        if self._dynamodb is not None:
            self._dynamodb.spawn()  # starts while the main server does
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.aws_port, verbose=False)
        self._moto.start()
        if self._dynamodb is not None:
            self._dynamodb.wait_ready()
            self._moto._server.app = self._dynamodb.forwarding(self._moto._server.app)
        self._osmem = OsmemServer.start(addr=f"127.0.0.1:{self.opensearch_port}", japanese=False)
        aws_url = f"http://127.0.0.1:{self.aws_port}"
        # Step Functions runs the real ASL interpreter; Lambda tasks are dispatched in-process.
        import urllib.request

        request = urllib.request.Request(
            f"{aws_url}/moto-api/config",
            data=json.dumps(
                {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            ).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).read()
        self._saved_environ = dict(os.environ)
        os.environ["MOTO_PORT"] = str(self.aws_port)
        self.info = self._provision(aws_url, self._osmem.url)
        self.info.apply()
        self._build_pumps()
        # The rebuild state machine (the same ASL file CDK deploys), Lambda tasks dispatched here.
        from dynembed_ops.local.stepfunctions import install_rebuild_workflow

        install_rebuild_workflow(self)
        if self.data is not None:
            self.restored = self._restore()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.stop_schedules()
        if self.data is not None:
            with contextlib.suppress(Exception), self._lock:  # best effort: written as it changed
                self.step_journal()
                self.persist()
            self.data.unlock()
        if self._osmem is not None:
            self._osmem.close()
        if self._moto is not None:
            self._moto.stop()
        if self._dynamodb is not None:
            self._dynamodb.stop()
        self._restore_environ()

    def _restore_environ(self) -> None:
        """Put back the process environment ``start`` changed (endpoints, table names): a process
        that ran a stack and goes on, like a test session, must not keep talking to a dead one."""
        if self._saved_environ is None:
            return
        os.environ.clear()
        os.environ.update(self._saved_environ)
        self._saved_environ = None
        reset_services()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- resources -----------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        direct = self._dynamodb is not None and service in ("dynamodb", "dynamodbstreams")
        return boto3.client(
            service,
            endpoint_url=self._dynamodb.url
            if direct and self._dynamodb
            else f"http://127.0.0.1:{self.aws_port}",
            region_name=REGION,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def _provision(self, aws_url: str, opensearch_url: str) -> StackInfo:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        ddb = self.client("dynamodb")
        source = ddb.create_table(
            TableName=NAMES.source_table,
            KeySchema=[{"AttributeName": self.schema.id_attribute, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": self.schema.id_attribute, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        stream_arn = source["TableDescription"]["LatestStreamArn"]
        for name, hash_key, range_key in [
            (NAMES.ledger_table, KEYS.ledger_hash, KEYS.ledger_range),
            (NAMES.registry_table, KEYS.registry_hash, None),
            (NAMES.embedding_cache_table, KEYS.cache_hash, None),
            (NAMES.held_jobs_table, KEYS.held_jobs_hash, None),
        ]:
            keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
            attrs = [{"AttributeName": hash_key, "AttributeType": "S"}]
            if range_key:
                keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
                attrs.append({"AttributeName": range_key, "AttributeType": "S"})
            ddb.create_table(
                TableName=name, KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST"
            )
        ddb.create_table(
            TableName=NAMES.query_samples_table,
            KeySchema=[
                {"AttributeName": KEYS.samples_hash, "KeyType": "HASH"},
                {"AttributeName": KEYS.samples_range, "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": KEYS.samples_hash, "AttributeType": "S"},
                {"AttributeName": KEYS.samples_range, "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.update_time_to_live(
            TableName=NAMES.query_samples_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": KEYS.samples_ttl},
        )
        sqs = self.client("sqs")
        dlq_url = sqs.create_queue(QueueName=NAMES.jobs_dlq)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        jobs_url = sqs.create_queue(
            QueueName=NAMES.jobs_queue,
            Attributes={
                "VisibilityTimeout": str(TUNING.sqs_visibility_timeout_s),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": TUNING.sqs_max_receive_count}
                ),
            },
        )["QueueUrl"]
        failures_url = sqs.create_queue(QueueName=NAMES.stream_failures_queue)["QueueUrl"]
        shadow_dlq_url = sqs.create_queue(QueueName=NAMES.shadow_dlq)["QueueUrl"]
        shadow_dlq_arn = sqs.get_queue_attributes(QueueUrl=shadow_dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        shadow_url = sqs.create_queue(
            QueueName=NAMES.shadow_queue,
            Attributes={
                "VisibilityTimeout": str(6 * TUNING.shadow_timeout_s),
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": shadow_dlq_arn,
                        "maxReceiveCount": TUNING.shadow_max_receive_count,
                    }
                ),
            },
        )["QueueUrl"]
        sample_rate, shadow_rate, keep_text = self.signals
        return StackInfo(
            aws_url=aws_url,
            opensearch_url=opensearch_url,
            region=REGION,
            stream_arn=stream_arn,
            jobs_queue_url=jobs_url,
            jobs_dlq_url=dlq_url,
            stream_failures_queue_url=failures_url,
            schema=self.schema.model_dump(mode="json"),
            pid=os.getpid(),
            shadow_queue_url=shadow_url,
            query_sample_rate=sample_rate,
            shadow_sample_rate=shadow_rate,
            query_keep_text=keep_text,
            dynamodb_url=self._dynamodb.url if self._dynamodb is not None else "",
        )

    def _build_pumps(self) -> None:
        assert self.info is not None
        sqs = self.client("sqs")
        jobs_arn = sqs.get_queue_attributes(QueueUrl=self.info.jobs_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.stream_pump = StreamPump(
            streams=self.client("dynamodbstreams"),
            sqs=sqs,
            stream_arn=self.info.stream_arn,
            invoke=lambda event: invoke("classify", event, TUNING.classify_timeout_s),
            on_failure_queue_url=self.info.stream_failures_queue_url,
            region=REGION,
        )
        self.sqs_pump = SqsPump(
            sqs=sqs,
            queue_url=self.info.jobs_queue_url,
            queue_arn=jobs_arn,
            invoke=lambda event: invoke("sync", event, TUNING.sync_timeout_s),
            retry_delay_s=self.retry_delay_s,
            region=REGION,
            concurrency=self.sync_concurrency,
        )
        shadow_arn = sqs.get_queue_attributes(
            QueueUrl=self.info.shadow_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.shadow_pump = SqsPump(
            sqs=sqs,
            queue_url=self.info.shadow_queue_url,
            queue_arn=shadow_arn,
            invoke=lambda event: invoke("shadow", event, TUNING.shadow_timeout_s),
            batch_size=TUNING.shadow_batch_size,
            visibility_timeout_s=6 * TUNING.shadow_timeout_s,
            retry_delay_s=self.retry_delay_s,
            region=REGION,
        )

    # ---- persistence (--data-dir) ---------------------------------------------------------------
    def _restore(self) -> Restored:
        """Registry rows back, interrupted rebuilds failed, indexes and alias again, then the
        source items back into the table (the stream carries them through classify and sync)."""
        from dynembed.core.models import GenerationStatus
        from dynembed.rebuild.generations import find_active
        from dynembed.rebuild.steps import mark_failed

        assert self.data is not None and self.info is not None
        ddb = self.client("dynamodb")
        rows = self.data.read_registry()
        put_items(ddb, NAMES.registry_table, rows)
        replay = self.data.read_source()
        self.data.compact(replay)
        svc = self.services()
        interrupted = []
        for gen in svc.registry.list():
            if gen.status in (GenerationStatus.BUILDING, GenerationStatus.EVALUATING):
                cause = "the local stack stopped during this rebuild; start it again with `dynembed rebuild`"
                mark_failed(svc, {"generation_id": gen.id}, {"Error": "Interrupted", "Cause": cause})
                interrupted.append(gen.id)
        generations = svc.registry.list()
        for gen in generations:
            if gen.status is not GenerationStatus.RETIRED:
                svc.index.ensure_index(gen)
        active = find_active(svc.registry)
        if active is not None:
            svc.index.swap_alias(svc.settings.index_alias, active.index_name, None)
        put_items(ddb, NAMES.source_table, list(replay.items.values()))
        journal = SourceJournal(self.data.source_journal, echoes=replay.items)
        self.journal_pump = journal_pump(
            self.client("dynamodbstreams"), self.info.stream_arn, journal, REGION
        )
        self.persist()
        return Restored(
            path=self.data.path,
            docs=len(replay.items),
            generations=len(generations),
            interrupted=interrupted,
            torn_tail=replay.torn_tail,
        )

    def persist(self) -> bool:
        """Write the registry rows if they changed (every change to the source is journaled as
        it streams). Returns whether it wrote."""
        if self.data is None:
            return False
        return self.data.write_registry(registry_rows(self.client("dynamodb"), NAMES.registry_table))

    def step_journal(self) -> int:
        moved = 0
        if self.journal_pump is not None:
            while settled := self.journal_pump.step():
                moved += settled
        return moved

    # ---- running -------------------------------------------------------------------------------
    def services(self) -> Services:
        from dynembed.wiring import services

        return services()

    def step(self) -> int:
        """One round: a stream batch, then the job batches it queued, until both are idle.
        Interleaved so the queue holds one batch's jobs, not the whole stream's (moto's
        ReceiveMessage looks at every message in the queue)."""
        assert self.stream_pump is not None and self.sqs_pump is not None
        with self._lock:
            moved = self.step_journal()
            while True:
                settled = self.stream_pump.step()
                received = self.sqs_pump.drain()
                moved += settled + received
                if not settled and not received:
                    break
            while self.shadow_pump is not None:
                shadowed = self.shadow_pump.step()
                moved += shadowed
                if not shadowed:
                    break
            return moved

    def drain(self, timeout_s: float = 600.0, drain_held: bool = False) -> int:
        """Run the pumps until nothing moves (and, with ``drain_held``, flush batched jobs)."""
        deadline = time.monotonic() + timeout_s
        total = 0
        idle_rounds = 0
        while time.monotonic() < deadline:
            moved = self.step()
            if drain_held:
                moved += self.flush_held()
            total += moved
            idle_rounds = idle_rounds + 1 if moved == 0 else 0
            if idle_rounds >= 2 and self._queue_empty():
                return total
            if moved == 0:
                time.sleep(0.05)
        raise DynembedError(f"the local pipeline did not settle within {timeout_s:.0f} s")

    def _queue_empty(self) -> bool:
        assert self.info is not None
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.info.jobs_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
            == 0
        )

    def flush_held(self, now: float | None = None) -> int:
        from dynembed.sync.drain import drain_held_jobs

        svc = self.services()
        return drain_held_jobs(svc.held, svc.queue, svc.schema, now=now).drained

    def run_forever(
        self, interval_s: float = 0.25, drain_every_s: float = 60.0, telemetry_file: Path | None = None
    ) -> None:
        """``dynembed up``: keep the pumps going until stopped. With ``telemetry_file``, the
        handlers' figures (counters, freshness samples) are written there for `dynembed status`."""
        last_drain = time.monotonic()
        written = 0.0
        idle = 0  # rounds in a row that moved nothing: poll less often, up to 16 x interval_s
        while not self._stop.is_set():
            try:
                if time.monotonic() - written >= 1.0:
                    if telemetry_file is not None:
                        snapshot = self.services().telemetry.snapshot()
                        telemetry_file.write_text(
                            json.dumps({**snapshot, "freshness_s": snapshot["freshness_s"][-10_000:]})
                        )
                    with self._lock:
                        self.persist()  # registry changes come from any process: found by a scan
                    written = time.monotonic()
                moved = self.step()
                if time.monotonic() - last_drain >= drain_every_s:
                    moved += self.flush_held()
                    last_drain = time.monotonic()
            except Exception as exc:  # keep serving; the error is the user's to see
                print(f"pump error: {exc}", flush=True)
                moved = 0
            idle = idle + 1 if moved == 0 else 0
            if moved == 0:
                self._stop.wait(interval_s * 2 ** min(idle - 1, 4))

    def start_schedules(
        self, every_s: Mapping[str, float], timeouts_s: Mapping[str, int]
    ) -> list[threading.Thread]:
        """EventBridge, locally: each function of ``every_s`` (canary, sentinel) invoked at its
        rate, the first time right away, each in a thread of its own (the sentinel waits on
        the pumps, the canary takes seconds). Stops with the stack."""
        self._schedules_stop.clear()
        threads = []
        for name, interval in every_s.items():
            thread = threading.Thread(
                target=self._every,
                args=(name, interval, timeouts_s[name]),
                daemon=True,
                name=f"schedule-{name}",
            )
            thread.start()
            threads.append(thread)
        self._schedules += threads
        return threads

    def stop_schedules(self, timeout_s: float = 30.0) -> None:
        """No further runs; waits (bounded) for one under way to end."""
        self._schedules_stop.set()
        for thread in self._schedules:
            thread.join(timeout=timeout_s)
        self._schedules = [t for t in self._schedules if t.is_alive()]

    def _every(self, name: str, interval_s: float, timeout_s: int) -> None:
        while not self._schedules_stop.is_set():
            try:
                invoke(name, dict(SCHEDULED_EVENT), timeout_s)
            except Exception as exc:  # a failed run is the alarms' to report; keep the schedule
                print(f"{name}: {exc}", flush=True)
            self._schedules_stop.wait(interval_s)

    @contextlib.contextmanager
    def background(self, interval_s: float = 0.1) -> Iterator[None]:
        thread = threading.Thread(target=self.run_forever, args=(interval_s,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=10)
            self._stop.clear()
