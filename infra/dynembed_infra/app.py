"""Builds the CDK app: the stack from validated context, with cdk-nag checking every synth."""

from __future__ import annotations

from typing import Any

from aws_cdk import App

from dynembed.core.config import TUNING, Tuning
from dynembed_infra import nag
from dynembed_infra.context import DeploymentConfig
from dynembed_infra.stack import DynembedStack

STACK_ID = "Dynembed"


def build_stack(app: App, tuning: Tuning = TUNING) -> DynembedStack:
    """The stack alone (tests add or leave out the checks themselves)."""
    config = DeploymentConfig.from_context(app.node.get_all_context())
    return DynembedStack(
        app,
        STACK_ID,
        config=config,
        tuning=tuning,
        description="dynembed: DynamoDB -> OpenSearch k-NN embeddings kept in sync (classify, sync, rebuild, audit)",
    )


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> tuple[App, DynembedStack]:
    """The app ``cdk synth`` runs: the stack plus the AwsSolutions checks."""
    app = App(context=context, outdir=outdir)
    stack = build_stack(app)
    nag.add_checks(app)
    return app, stack
