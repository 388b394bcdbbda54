"""CDK entry point (``make synth``, ``npx cdk synth|deploy`` from the repository root)."""

from __future__ import annotations

from dynembed_infra import build_app

if __name__ == "__main__":
    app, _stack = build_app()
    app.synth()
