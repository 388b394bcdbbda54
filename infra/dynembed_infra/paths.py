"""Where the code the stack packages lives, resolved from this file so the synth works from any cwd."""

from __future__ import annotations

from pathlib import Path

from dynembed.core.config import REBUILD_ASL_PATH

REPO_ROOT = Path(__file__).resolve().parents[2]
CORE_LAYER_DIR = REPO_ROOT / "layers" / "core"
CORE_PACKAGE_DIR = CORE_LAYER_DIR / "dynembed"
LAYER_REQUIREMENTS = CORE_LAYER_DIR / "requirements.txt"
FUNCTIONS_DIR = REPO_ROOT / "functions"
REBUILD_ASL = REPO_ROOT / REBUILD_ASL_PATH

# Never shipped to Lambda: caches, build metadata, local-only tooling.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "*.egg-info", ".mypy_cache", ".pytest_cache", "tests"]
