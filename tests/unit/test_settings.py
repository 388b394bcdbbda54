"""Settings fail loudly: in Lambda a missing or invalid variable stops the cold start, naming it;
outside Lambda a missing value fails where it is first needed; enumerations are closed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dynembed.core.config import Settings, load_settings
from dynembed.core.errors import ConfigError
from dynembed.core.observability import PowertoolsMetricsSink
from dynembed.wiring import Services, telemetry_for
from dynembed_ops.local.stack import StackInfo

pytestmark = pytest.mark.unit

COMPLETE = {
    **{Settings.variable(name): f"value-of-{name}" for name in Settings.REQUIRED_IN_LAMBDA},
    "DYNEMBED_OPENSEARCH_AUTH": "sigv4",
    "DYNEMBED_KNN_MODE": "native",
    "DYNEMBED_REPORTS_DIR": "s3://reports-bucket/reports",
    "DYNEMBED_SOURCE_SCHEMA": "{}",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No DYNEMBED_* variable and no Lambda; the settings cache is cleared around the test."""
    for name in list(os.environ):
        if name.startswith("DYNEMBED_") or name in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    load_settings.cache_clear()
    yield monkeypatch
    load_settings.cache_clear()


def in_lambda(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "dynembed-classify")
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_a_cold_start_with_every_required_variable_succeeds(clean_env: pytest.MonkeyPatch) -> None:
    in_lambda(clean_env, COMPLETE)
    settings = load_settings()
    assert settings.in_lambda and settings.jobs_queue_url == "value-of-jobs_queue_url"


@pytest.mark.parametrize("missing", sorted(Settings.REQUIRED_IN_LAMBDA))
def test_a_cold_start_without_a_required_variable_fails_naming_it(
    clean_env: pytest.MonkeyPatch, missing: str
) -> None:
    # GIVEN a Lambda environment lacking one required variable (absent, or set but empty)
    env = {k: v for k, v in COMPLETE.items() if k != Settings.variable(missing)}
    in_lambda(clean_env, env)
    # WHEN the settings are read at cold start THEN it fails naming the variable and the function
    with pytest.raises(ConfigError, match=rf"dynembed-classify lacks .*{Settings.variable(missing)}"):
        load_settings()
    clean_env.setenv(Settings.variable(missing), "")
    load_settings.cache_clear()
    with pytest.raises(ConfigError, match=Settings.variable(missing)):
        load_settings()


def test_reports_must_outlive_the_sandbox_in_lambda(clean_env: pytest.MonkeyPatch) -> None:
    in_lambda(clean_env, {**COMPLETE, "DYNEMBED_REPORTS_DIR": "/tmp/dynembed-reports"})
    with pytest.raises(ConfigError, match=r"DYNEMBED_REPORTS_DIR must be an s3:// location"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"), [("DYNEMBED_KNN_MODE", "approximate"), ("DYNEMBED_OPENSEARCH_AUTH", "basic")]
)
def test_enumerations_refuse_other_values_naming_the_variable(
    clean_env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"{variable}: Input should be"):
        load_settings()


def test_outside_lambda_a_missing_value_fails_where_it_is_needed(clean_env: pytest.MonkeyPatch) -> None:
    # GIVEN no variables at all (a developer's shell)
    svc = Services()
    # THEN building the adapters that need a URL names the variable to set
    with pytest.raises(ConfigError, match="DYNEMBED_JOBS_QUEUE_URL is not set"):
        _ = svc.queue
    with pytest.raises(ConfigError, match="DYNEMBED_OPENSEARCH_ENDPOINT is not set"):
        _ = svc.index
    # AND the optional dead-letter queues are simply absent
    assert svc.dead_letters is None and svc.job_dead_letters is None


def test_metrics_go_to_emf_in_lambda_only(clean_env: pytest.MonkeyPatch) -> None:
    assert telemetry_for(Settings()).sink is None
    in_lambda(clean_env, COMPLETE)
    assert isinstance(telemetry_for(Settings()).sink, PowertoolsMetricsSink)


def test_the_local_stack_sets_every_variable_a_lambda_requires() -> None:
    # GIVEN the environment the local runtime gives its in-process handlers
    info = StackInfo(
        aws_url="http://127.0.0.1:1",
        opensearch_url="http://127.0.0.1:2",
        region="us-east-1",
        stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        jobs_queue_url="http://127.0.0.1:1/q/jobs",
        jobs_dlq_url="http://127.0.0.1:1/q/dlq",
        stream_failures_queue_url="http://127.0.0.1:1/q/failures",
        schema={},
    )
    env = info.env()
    # THEN it sets explicitly every value a deployed function must have, nothing left to defaults
    unset = sorted(v for v in map(Settings.variable, Settings.REQUIRED_IN_LAMBDA) if not env.get(v))
    assert unset == []
