"""What every CLI command module shares: consoles, the --json flag, one-line errors, the connection
to the running stack, and ``CommandSet`` (a module declares its commands; ``main`` registers them)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from dynembed.core.errors import DynembedError

# Wide enough for the demo's tables when output goes to a file or CI log (rich assumes 80).
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)  # an error stays one line in logs, however long
F = TypeVar("F", bound=Callable[..., Any])

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def friendly(func: F) -> F:
    """Domain errors and bad input → one red line and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (DynembedError, ValueError, FileNotFoundError) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")  # a value like [x] is text, not markup
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def emit(data: Any, as_json: bool) -> bool:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    return as_json


def connect() -> Any:
    """Services of the running `dynembed up` stack."""
    from dynembed.wiring import services
    from dynembed_ops.local.stack import StackInfo

    StackInfo.load().apply()
    return services()


class CommandSet:
    """The commands one module declares. ``main`` registers them on the app explicitly, so no
    command appears by the side effect of an import."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, tuple[Any, ...], dict[str, Any], Callable[..., Any]]] = []

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        return self._declare("command", args, kwargs)

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        return self._declare("callback", args, kwargs)

    def _declare(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[F], F]:
        def declare(func: F) -> F:
            self._entries.append((kind, args, kwargs, func))
            return func

        return declare

    def register(self, target: typer.Typer) -> None:
        for kind, args, kwargs, func in self._entries:
            getattr(target, kind)(*args, **kwargs)(func)
