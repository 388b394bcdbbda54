"""Whole objects by location: ``s3://bucket/key`` through S3, anything else on the local disk.
Golden sets are read and evaluation reports written through this, in AWS and locally alike."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dynembed.core.errors import ConfigError, TransientError
from dynembed.rebuild.inputs import S3_URI

_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "ThrottlingException"}


class UriBlobStore:
    """``s3_client`` builds the S3 client on first use (the layer never needs it locally)."""

    def __init__(self, s3_client: Callable[[], Any]) -> None:
        self._make_client = s3_client

    @cached_property
    def _s3(self) -> Any:
        return self._make_client()

    def read(self, location: str) -> bytes:
        if not location.startswith("s3://"):
            try:
                return Path(location).read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {location}: {exc.strerror}") from exc
        bucket, key = _split(location)
        try:
            body: bytes = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise _client_error(exc, f"cannot read {location}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"cannot read {location}: {exc}") from exc
        return body

    def write(self, location: str, data: bytes, content_type: str = "text/plain") -> str:
        if not location.startswith("s3://"):
            path = Path(location).resolve()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
            return str(path)
        bucket, key = _split(location)
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as exc:
            raise _client_error(exc, f"cannot write {location}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"cannot write {location}: {exc}") from exc
        return location


def _split(location: str) -> tuple[str, str]:
    match = S3_URI.match(location)
    if match is None:
        raise ConfigError(f"{location!r} is not an s3://bucket/key URI")
    return match["bucket"], match["key"]


def _client_error(exc: ClientError, what: str) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _TRANSIENT:
        return TransientError(f"{what}: {code}")
    return ConfigError(f"{what}: {code or exc}")
