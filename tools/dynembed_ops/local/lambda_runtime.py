"""What the local runtime needs to call real handlers the way Lambda does: the handler loaded
from ``functions/<name>/handler.py`` and a context object with Lambda's attributes."""

from __future__ import annotations

import importlib.util
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from dynembed.core.errors import ConfigError
from dynembed_ops import paths

Handler = Callable[[dict[str, Any], Any], Any]


def functions_dir() -> Path:
    """``functions/`` of this checkout (or DYNEMBED_FUNCTIONS_DIR)."""
    if os.environ.get("DYNEMBED_FUNCTIONS_DIR"):
        return Path(os.environ["DYNEMBED_FUNCTIONS_DIR"])
    return paths.FUNCTIONS_DIR


@cache
def load_handler(name: str) -> Handler:
    path = functions_dir() / name / "handler.py"
    if not path.exists():
        raise ConfigError(f"no handler for function {name!r} at {path}")
    spec = importlib.util.spec_from_file_location(f"dynembed_function_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = module.handler
    return handler


@dataclass
class LocalLambdaContext:
    """The attributes of ``aws_lambda_powertools.utilities.typing.LambdaContext``."""

    function_name: str
    timeout_s: int = 60
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = "us-east-1"
    account: str = "123456789012"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


InvokeObserver = Callable[[str, dict[str, Any], float], None]
"""Called after each invocation with (function name, event, duration in seconds)."""
_observers: list[InvokeObserver] = []


def add_invoke_observer(observer: InvokeObserver) -> None:
    _observers.append(observer)


def remove_invoke_observer(observer: InvokeObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def invoke(name: str, event: dict[str, Any], timeout_s: int = 60) -> Any:
    started = time.perf_counter()
    try:
        return load_handler(name)(
            event, LocalLambdaContext(function_name=f"dynembed-{name}", timeout_s=timeout_s)
        )
    finally:
        for observer in list(_observers):
            observer(name, event, time.perf_counter() - started)
