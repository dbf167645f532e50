"""What this process has already read issue files as, so a desk page does not parse and validate
the same file again: the YAML read of a text (``yaml_loader.read_yaml``) and the validated issue
of a file (``load.load_issue``).

Each is remembered by what it was made from, never by time: the read by the file's whole text (and
its path, which its problems name); the validated issue by that text, the campaign folder's
modification time (an image file added or removed beside ``issue.yaml`` changes what is valid) and
the lists (``Shape``) it was checked against, by identity. An edit changes the text, so it is never
answered from memory. The memory is per process (nothing is shared or written), holds the last
``SIZE`` files, and gives each caller its own copy of anything a caller could change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

SIZE = 32

V = TypeVar("V")


class Memo(Generic[V]):
    """The last ``size`` values made, by key; safe to share between threads."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value of ``key``, made by ``make`` (outside the lock) when it is not remembered."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)


def plain_copy(value: Any) -> Any:
    """A copy of plain YAML data (dicts and lists copied, the values in them immutable)."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value
