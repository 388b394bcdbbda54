"""The one Lambda layer every function shares: ``dynembed`` plus its pinned runtime dependencies.

There is no Docker here (nor in CI), so the layer is bundled locally: pip downloads the Linux
wheels for the Lambda runtime's Python (``--platform``/``--python-version``, binary only) into
``python/``, and the ``dynembed`` package is copied beside them. The Docker image named in the
bundling options is never pulled: local bundling either succeeds or fails with pip's message.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from dynembed.core.config import NAMES
from dynembed_infra.paths import ASSET_EXCLUDES, CORE_LAYER_DIR, CORE_PACKAGE_DIR, LAYER_REQUIREMENTS

RUNTIME = lambda_.Runtime.PYTHON_3_14
"""The newest Python runtime CDK knows; every binary wheel in requirements.txt exists for it."""
ARCHITECTURE = lambda_.Architecture.X86_64
# numpy >= 2.3 ships manylinux_2_28 wheels only; older pins ship manylinux2014. Lambda's
# Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), which takes both.
WHEEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")


class LayerBuildError(RuntimeError):
    """pip could not assemble the layer; the message carries pip's own explanation."""


def runtime_python_version(runtime: lambda_.Runtime = RUNTIME) -> str:
    """``python3.14`` -> ``3.14``: pip must pick wheels for the runtime, not for this machine."""
    return runtime.name.removeprefix("python")


def pip_command(target: Path, requirements: Path = LAYER_REQUIREMENTS) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "-r", str(requirements), "--target", str(target)]
    for platform in WHEEL_PLATFORMS:
        command += ["--platform", platform]
    command += ["--only-binary=:all:", "--python-version", runtime_python_version()]
    command += ["--implementation", "cp", "--no-compile"]
    return command


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Builds ``<out>/python/`` with pip and a copy of ``dynembed``; never falls back to Docker."""

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        # jsii hands the BundlingOptions over positionally; they are not needed here.
        del _options, _keywords
        target = Path(output_dir) / "python"
        result = subprocess.run(pip_command(target), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-2000:]
            raise LayerBuildError(f"bundling the core layer failed (pip exit {result.returncode}):\n{detail}")
        shutil.copytree(
            CORE_PACKAGE_DIR,
            target / "dynembed",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
        return True


class CoreLayer(Construct):
    """Owns the layer version; functions attach ``self.layer``."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        code = lambda_.Code.from_asset(
            str(CORE_LAYER_DIR),
            exclude=ASSET_EXCLUDES,
            bundling=BundlingOptions(
                image=DockerImage.from_registry(f"public.ecr.aws/sam/build-{RUNTIME.name}"),
                local=PipLayerBundling(),
            ),
        )
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            layer_version_name=f"{NAMES.service}-core",
            code=code,
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="dynembed domain package and its pinned runtime dependencies",
            removal_policy=RemovalPolicy.RETAIN,
        )
