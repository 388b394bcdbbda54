"""Two shortcuts through moto's request handling, applied by the local stack (never in Lambda).

Both keep moto's answers as they are and only stop recomputing what cannot have changed; found
by profiling the local sync path (docs/benchmarks.md, "the local stack's speed"):

- ``SQSBackend.is_message_valid_based_on_retention_period`` runs for every message received and
  reads the queue's retention period through ``get_queue_attributes``, which computes every
  attribute of the queue, counting its messages (each a clock read) three times over. The
  retention period is a plain attribute of the queue: it is read directly.
- ``moto.backends.list_of_moto_modules`` lists moto's package directory (~150 ``isdir`` calls)
  on every request, to tell a service name from a host; the list cannot change while the
  process runs, so it is read once.

Written against moto 5.2.5 (constraints.txt); a moto without these functions is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    _read_moto_modules_once()
    _retention_from_the_queue()


def _read_moto_modules_once() -> None:
    import moto.backends

    if not hasattr(moto.backends, "list_of_moto_modules"):
        return
    modules = tuple(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> Iterable[str]:
        return modules

    moto.backends.list_of_moto_modules = list_of_moto_modules


def _retention_from_the_queue() -> None:
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if not hasattr(SQSBackend, "is_message_valid_based_on_retention_period"):
        return

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
