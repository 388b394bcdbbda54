"""`dynembed bench ...` commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dynembed_ops.cli.common import CommandSet, friendly

commands = CommandSet()


@commands.command("editstream")
@friendly
def editstream(
    events: Annotated[
        Path, typer.Option(help="Edit stream (.jsonl or .jsonl.gz, data/editstream/README.md)")
    ],
    max_commits: Annotated[
        int | None, typer.Option(help="Replay the snapshot and this many commits (default: all)")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the JSON summary here")] = None,
    dump_chunks: Annotated[
        Path | None, typer.Option(help="Write the final index, read back, as JSON lines here")
    ] = None,
) -> None:
    """Replay an edit stream through the real pipeline; compare with naive and LangChain."""
    from dynembed_ops.bench.editstream_bench import BenchOptions, run_editstream_bench

    stdout = sys.stdout  # the JSON's; everything else goes to stderr
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = progress.add_task("snapshot", total=None)

    def advance(phase: str, done: int, total: int) -> None:
        if not progress.live.is_started:  # shown once the input is read: a bad file is one line
            progress.start()
        progress.update(task, description=phase, completed=done, total=total)

    try:
        summary: dict[str, Any] = run_editstream_bench(
            BenchOptions(events=events, max_commits=max_commits, dump_chunks=dump_chunks), advance
        )
    finally:
        progress.stop()
    text = json.dumps(summary, indent=2)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
    stdout.write(text + "\n")
    stdout.flush()


@commands.command("cost")
@friendly
def cost(
    docs: Annotated[int, typer.Option(help="FAQ docs loaded first (not measured)")] = 300,
    changes: Annotated[
        int, typer.Option(help="Changes measured per kind (content, metadata, access, delete)")
    ] = 60,
    json_out: Annotated[
        Path, typer.Option("--json", help="Where the counts go (`dynembed cost` reads this file)")
    ] = Path("bench/results/cost_counts.json"),
) -> None:
    """Count the AWS requests each kind of change and each rebuilt item really makes (local stack)."""
    from dynembed_ops.bench.cost_bench import CostBenchOptions, run_cost_bench

    with Console(stderr=True).status("measuring on a local stack (moto + osmem + the real handlers)"):
        summary = run_cost_bench(CostBenchOptions(docs=docs, changes=changes))
    text = json.dumps(summary, indent=2)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
