"""Shared test set-up. Fixtures live in tests/plugins/ (one module per external dependency)."""

import os

# No test may reach AWS: fake credentials, a fixed region, no account-based endpoints (FACTS.md).
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "dynembed")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "dynembed")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.plugins.osmem", "tests.plugins.aws", "tests.plugins.unit_guard", "pytester"]
