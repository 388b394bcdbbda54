"""Snapshot of the default template: any change to the deployed shape shows up in review.

Asset hashes (code, layer, state machine definition) are normalised: code changes are not
infrastructure changes. After an intended change, refresh the snapshot with
``DYNEMBED_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/infra/test_snapshot.py`` and commit it.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

SNAPSHOT = Path(__file__).parent / "snapshots" / "Dynembed.template.json"
UPDATE_ENV = "DYNEMBED_UPDATE_SNAPSHOTS"
_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def normalised(template: dict[str, Any]) -> str:
    return _ASSET_HASH.sub("<asset-hash>", json.dumps(template, indent=1, sort_keys=True)) + "\n"


def test_template_matches_the_snapshot(synth: Synth) -> None:
    # GIVEN the default template with asset hashes normalised
    current = normalised(synth.template_json)
    if os.environ.get(UPDATE_ENV) == "1" or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(current)
        if os.environ.get(UPDATE_ENV) != "1":
            pytest.fail(f"no snapshot existed; wrote {SNAPSHOT}: review and commit it")
    # THEN it equals the reviewed snapshot
    expected = SNAPSHOT.read_text()
    if current != expected:
        diff = "".join(
            list(
                difflib.unified_diff(expected.splitlines(True), current.splitlines(True), "snapshot", "synth")
            )[:80]
        )
        pytest.fail(f"template differs from {SNAPSHOT.name} (set {UPDATE_ENV}=1 if intended):\n{diff}")


def test_normalisation_hides_asset_hashes_only() -> None:
    template = {"Key": "a" * 64 + ".zip", "Name": "dynembed-sync", "Short": "ab" * 10}
    text = normalised(template)
    assert "<asset-hash>.zip" in text and "dynembed-sync" in text and "ab" * 10 in text
