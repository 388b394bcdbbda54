"""Three shortcuts through moto's request handling, applied by the local stack (never in Lambda).

Both keep moto's answers as they are and only stop recomputing what cannot have changed; found
by profiling the local sync path (docs/benchmarks.md, "the local stack's speed"):

- ``SQSBackend.is_message_valid_based_on_retention_period`` runs for every message received and
  reads the queue's retention period through ``get_queue_attributes``, which computes every
  attribute of the queue, counting its messages (each a clock read) three times over. The
  retention period is a plain attribute of the queue: it is read directly.
- ``Queue.attributes`` builds every attribute of a queue, counting its messages three times,
  and ``SendMessage`` asks it for one (``ContentBasedDeduplication``) per message sent, so a
  batch of sends cost O(queue length) each; the attributes are now computed when read, one
  at a time, with the same names, order and values.
- ``moto.backends.list_of_moto_modules`` lists moto's package directory (~150 ``isdir`` calls)
  on every request, to tell a service name from a host; the list cannot change while the
  process runs, so it is read once.

Written against moto 5.2.5 (constraints.txt); a moto without these functions is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

_APPLIED = False
ORIGINALS: dict[str, Any] = {}
"""What each shortcut replaced, so a test can compare the two answers."""


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    _read_moto_modules_once()
    _retention_from_the_queue()
    _queue_attributes_on_demand()


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


def _queue_attributes_on_demand() -> None:
    import json

    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue

    original = Queue.__dict__.get("attributes")
    if not isinstance(original, property):
        return
    ORIGINALS["Queue.attributes"] = original.fget

    class QueueAttributes(Mapping[str, Any]):
        """``Queue.attributes`` as moto 5.2.5 builds it, each value computed when read."""

        def __init__(self, queue: Any) -> None:
            self._queue = queue
            names = list(queue.BASE_ATTRIBUTES)
            if queue.fifo_queue:
                names += queue.FIFO_ATTRIBUTES
            if queue.kms_master_key_id:
                names += queue.KMS_ATTRIBUTES
            self._names = list(dict.fromkeys(names))

        def __getitem__(self, name: str) -> Any:
            if name not in self._names:
                raise KeyError(name)
            queue = self._queue
            if name == "RedrivePolicy" and queue.redrive_policy:
                return json.dumps(queue.redrive_policy)
            value = getattr(queue, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value

        def __iter__(self) -> Iterator[str]:
            return iter(self._names)

        def __len__(self) -> int:
            return len(self._names)

    Queue.attributes = property(QueueAttributes)  # type: ignore[method-assign,assignment]
