"""The shared layer: a complete, pinned requirements closure and a local (Docker-free) bundler."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dynembed_infra import layer
from dynembed_infra.paths import CORE_PACKAGE_DIR, LAYER_REQUIREMENTS

pytestmark = pytest.mark.infra

# Declared dependencies deliberately left out of the layer, and why (see requirements.txt).
OMITTED = {
    "botocore": "provided by the Lambda Python runtime (with boto3 and s3transfer)",
    "opensearch-protobufs": "opensearch-py's gRPC transport, never imported (pulls grpcio and protobuf)",
}


TOOLING_NAMES = {"cli", "demo", "local", "bench", "source_app", "editstream", "paths", "ops"}
"""Top-level module or package names that belong to the operator tooling (``tools/dynembed_ops``)."""


def _pins() -> dict[str, tuple[Requirement, str]]:
    pins: dict[str, tuple[Requirement, str]] = {}
    for line in LAYER_REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{line}: pin it exactly"
            pins[canonicalize_name(requirement.name)] = (requirement, spec.version)
    return pins


def _closure(roots: list[Requirement], python_version: str) -> set[str]:
    """Every distribution the roots need on Linux under ``python_version``, omitted ones not entered."""
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    environment |= {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}
    seen: set[str] = set()
    pending = [(r.name, set(r.extras)) for r in roots]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if key in OMITTED:
            seen.add(key)
            continue
        if key in seen and not extras:
            continue
        seen.add(key)
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in ["", *extras]
            )
            if wanted:
                pending.append((requirement.name, set(requirement.extras)))
    return seen


def test_requirements_are_the_complete_closure_minus_what_the_runtime_provides() -> None:
    # GIVEN the pinned layer requirements (installed with --no-deps)
    pins = _pins()
    direct = [req for req, _ in pins.values()]
    # WHEN their dependency closure is computed for the Lambda runtime's Python
    closure = _closure(direct, layer.runtime_python_version())
    # THEN nothing is missing but the deliberate omissions, and nothing is listed for no reason
    assert closure - pins.keys() == OMITTED.keys()
    assert pins.keys() - closure == set()


def test_requirements_match_the_versions_this_repository_tests_with() -> None:
    for name, (_, version) in _pins().items():
        try:
            installed = distribution(name).version
        except PackageNotFoundError:  # pragma: no cover - the venv is the project's
            pytest.fail(f"{name} is pinned for the layer but not installed in the venv")
        assert installed == version, f"layer pins {name}=={version}, the venv tests {installed}"


def test_layer_excludes_the_boto_stack_and_local_only_packages() -> None:
    assert not _pins().keys() & {
        "boto3",
        "botocore",
        "moto",
        "torch",
        "osmem-server",
        "sentence-transformers",
    }


def test_pip_command_targets_the_lambda_runtime_not_this_machine(tmp_path: Path) -> None:
    command = layer.pip_command(tmp_path / "python")
    assert command[1:4] == ["-m", "pip", "install"]
    assert ["--python-version", layer.RUNTIME.name.removeprefix("python")] == command[
        command.index("--python-version") : command.index("--python-version") + 2
    ]
    assert "--only-binary=:all:" in command and "--no-deps" in command
    assert command[command.index("--implementation") :][:2] == ["--implementation", "cp"]
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms == ["manylinux2014_x86_64", "manylinux_2_28_x86_64"]
    assert ["-r", str(LAYER_REQUIREMENTS)] == command[command.index("-r") :][:2]


def test_bundling_installs_wheels_then_copies_dynembed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN pip that succeeds (replaced: no network in tests)
    calls: list[list[str]] = []

    def fake_pip(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        Path(command[command.index("--target") + 1]).mkdir(parents=True)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(layer.subprocess, "run", fake_pip)
    # WHEN the layer is bundled
    assert layer.PipLayerBundling().try_bundle(str(tmp_path), {"image": None}) is True
    # THEN pip wrote into python/ and dynembed sits beside the wheels, without caches
    assert calls and calls[0][calls[0].index("--target") + 1] == str(tmp_path / "python")
    shipped = tmp_path / "python" / "dynembed"
    assert (shipped / "core" / "config.py").read_text() == (
        CORE_PACKAGE_DIR / "core" / "config.py"
    ).read_text()
    assert (shipped / "rebuild" / "rebuild.asl.json").is_file()
    assert not list(shipped.rglob("__pycache__"))
    # AND only the runtime ships: no operator tooling (CLI, demo, local runtime, benchmarks)
    assert not (tmp_path / "python" / "dynembed_ops").exists()
    modules = {p.relative_to(shipped).as_posix() for p in shipped.rglob("*.py")}
    tooling = {m for m in modules if m.split("/")[0].removesuffix(".py") in TOOLING_NAMES}
    assert not tooling, f"tooling modules inside the layer: {sorted(tooling)}"
    assert {"sync/reconcile.py", "rebuild/steps.py", "query/search.py", "audit/run.py"} <= modules


def test_no_runtime_module_imports_the_tooling_package() -> None:
    """The layer ships ``dynembed`` alone, so nothing in it may import ``dynembed_ops``."""
    offenders = [
        str(path.relative_to(CORE_PACKAGE_DIR))
        for path in CORE_PACKAGE_DIR.rglob("*.py")
        if re.search(r"^\s*(from|import) dynembed_ops", path.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []


def test_bundling_failure_raises_with_pips_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: No matching distribution found for numpy==9"
        )

    monkeypatch.setattr(layer.subprocess, "run", failing_pip)
    with pytest.raises(layer.LayerBuildError, match="No matching distribution found for numpy==9"):
        layer.PipLayerBundling().try_bundle(str(tmp_path))
