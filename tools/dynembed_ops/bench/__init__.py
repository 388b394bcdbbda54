"""Benchmarks that run the real pipeline on real data (``dynembed bench ...``).

Kept inside the package, not in ``bench/`` scripts, because they need the local stack and the
handlers exactly as ``dynembed demo`` runs them, and the CLI registers them as commands.
"""
