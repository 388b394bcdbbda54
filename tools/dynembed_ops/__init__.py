"""Operator tooling for dynembed: the CLI, the demo, the local runtime, benchmarks and the
source-app simulator. Depends on the runtime package ``dynembed``; never bundled into Lambda."""
