"""The `dynembed` command line: the demo, a long-running local stack, and the commands that talk
to it. Errors a person meets print one clear line and exit non-zero, never a traceback.

Each command module declares its commands in a ``CommandSet``; ``build_app`` registers them."""

from __future__ import annotations

import os

import typer

from dynembed_ops.cli import bench, cost, explain, generations, local, operate, quality, signals


def build_app() -> typer.Typer:
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        help="Keep vector-search embeddings true to changing data.",
    )
    dlq_app = typer.Typer(help="Dead-lettered jobs and parked stream records.", invoke_without_command=True)
    bench_app = typer.Typer(help="Benchmarks.")
    signals_app = typer.Typer(help="Live-query signals and shadow comparison.")
    local.commands.register(app)
    operate.commands.register(app)
    generations.commands.register(app)
    cost.commands.register(app)
    quality.commands.register(app)
    explain.commands.register(app)
    signals.commands.register(signals_app)
    operate.dlq_commands.register(dlq_app)
    bench.commands.register(bench_app)
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(bench_app, name="bench")
    app.add_typer(signals_app, name="signals")
    return app


app = build_app()


def main() -> None:
    import warnings

    # Handlers run in-process locally; an empty EMF flush is not news to a person at a terminal.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    app()


if __name__ == "__main__":
    main()
