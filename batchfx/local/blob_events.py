"""The local runner's stand-in for Event Grid: blob-triggered functions on new blobs.

It polls the containers the app's ``blobTrigger`` functions watch and calls a function
once for each blob version (name + ETag) this emulator has not delivered yet, with the
``InputStream`` the host would build. Like Event Grid it delivers at least once: a new
emulator (a restarted runner) delivers every existing blob again, and a function that
raises gets the event again on the next poll, up to ``max_attempts`` times.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.blob import InputStream

from batchfx.core.errors import StorageNotFoundError
from batchfx.local.bindings import resolve_settings, triggered
from batchfx.local.http_server import call_function
from batchfx.storage import BlobRef, Storage

__all__ = ["BlobEventEmulator", "BlobTrigger", "blob_triggers"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlobTrigger:
    """A blob-triggered function: the container it watches and its path pattern."""

    name: str
    container: str
    pattern: re.Pattern[str]
    prefix: str
    arg: str
    client_arg: str | None
    function: Callable[..., Any]



def _path_regex(path: str) -> tuple[re.Pattern[str], str]:
    # "{name}" matches across '/', as the host's blob path templates do; the literal text
    # before the first placeholder narrows the listing.
    parts = re.split(r"(\{[^}]+\})", path)
    regex = "".join(f"(?P<{p[1:-1]}>.+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$"), parts[0]


def blob_triggers(app: func.FunctionRegister, env: Mapping[str, str]) -> list[BlobTrigger]:
    """The app's blob-triggered functions with ``%SETTING%`` paths resolved."""
    triggers = []
    for fn in triggered(app, "blobTrigger"):
        resolved = resolve_settings(fn.trigger["path"], env, "a blob trigger path")
        container, _, path = resolved.partition("/")
        pattern, prefix = _path_regex(path)
        triggers.append(BlobTrigger(fn.name, container, pattern, prefix, fn.trigger["name"],
                                    fn.durable_client, fn.user_function))
    return triggers


class BlobEventEmulator:
    """Deliver blob-created events to the app's blob triggers: ``start()``/``stop()``."""

    def __init__(self, app: func.FunctionRegister, storage: Storage, env: Mapping[str, str],
                 client_binding: Callable[[], str], *, poll_interval: float = 1.0,
                 subject_ends_with: tuple[str, ...] = (), max_attempts: int = 5) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval: got {poll_interval} — expected seconds > 0")
        if max_attempts < 1:
            raise ValueError(f"max_attempts: got {max_attempts} — expected 1 or more")
        self.triggers = blob_triggers(app, env)
        self._storage = storage
        self._client_binding = client_binding
        self._poll_interval = poll_interval
        # The Event Grid subscription's subject filter: blobs it would not deliver.
        self._suffixes = subject_ends_with
        self._max_attempts = max_attempts
        self._delivered: dict[tuple[str, str], str] = {}  # (function, blob) -> ETag
        self._failures: dict[tuple[str, str, str], int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """Deliver every blob version not delivered yet; returns how many calls succeeded."""
        delivered = 0
        for trigger in self.triggers:
            for ref in self._listing(trigger):
                if not trigger.pattern.match(ref.name) or \
                        (self._suffixes and not ref.name.endswith(self._suffixes)):
                    continue
                if self._delivered.get((trigger.name, ref.name)) == ref.etag:
                    continue
                if self._deliver(trigger, ref):
                    delivered += 1
        return delivered

    def _listing(self, trigger: BlobTrigger) -> list[BlobRef]:
        try:
            return list(self._storage.blobs.list_names(trigger.container, trigger.prefix))
        except StorageNotFoundError:
            return []  # no container yet: nothing has been dropped

    def _deliver(self, trigger: BlobTrigger, ref: BlobRef) -> bool:
        try:
            data = self._storage.blobs.download(trigger.container, ref.name)
        except StorageNotFoundError:  # deleted since the listing: no blob, no event
            logger.info("blob %s/%s is gone before %s ran", trigger.container, ref.name,
                        trigger.name)
            return False
        key = (trigger.name, ref.name, ref.etag)
        try:
            self._invoke(trigger, ref, data)
            succeeded = True
        except Exception:
            attempts = self._failures.get(key, 0) + 1
            self._failures[key] = attempts
            if attempts < self._max_attempts:
                logger.exception("function %s failed on blob %s/%s (attempt %d); it gets the "
                                 "event again", trigger.name, trigger.container, ref.name,
                                 attempts)
                return False
            logger.exception("function %s failed on blob %s/%s %d times; event given up",
                             trigger.name, trigger.container, ref.name, attempts)
            succeeded = False
        self._failures.pop(key, None)
        self._delivered[(trigger.name, ref.name)] = ref.etag
        return succeeded

    def _invoke(self, trigger: BlobTrigger, ref: BlobRef, data: bytes) -> None:
        url = self._storage.blobs.url(trigger.container, ref.name)
        # The host's shape: name is container/blob; Properties carry the ETag and length.
        stream = InputStream(data=data, name=f"{trigger.container}/{ref.name}", uri=url,
                             length=len(data), metadata={},
                             blob_properties={"ETag": ref.etag, "ContentLength": len(data),
                                              "Length": len(data)})
        kwargs: dict[str, Any] = {trigger.arg: stream}
        if trigger.client_arg:
            kwargs[trigger.client_arg] = self._client_binding()
        call_function(trigger.function, kwargs)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("polling blob containers failed; trying again")
            self._stop.wait(self._poll_interval)

    def start(self) -> BlobEventEmulator:
        """Poll in a background thread until ``stop()``."""
        if self._thread is None and self.triggers:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="batchfx-blob-events",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (after the delivery in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
