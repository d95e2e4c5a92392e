"""The local runner: the app's own function code on one machine, against Azurite.

It plays the Functions host: serves the HTTP functions, runs ``workers`` worker
processes pulling the queues (lease, dequeue count, poison queue), restarts a worker
process that dies, and drives orchestrators through the Durable SDK. State lives in
storage, so a restarted runner resumes its jobs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType

from batchfx.api import context as app_context
from batchfx.core.settings import Settings
from batchfx.local.bindings import load_app
from batchfx.local.blob_events import BlobEventEmulator
from batchfx.local.durable.runtime import LocalDurableRuntime
from batchfx.local.durable.store import BlobInstanceStore
from batchfx.local.http_server import FunctionsHttpServer
from batchfx.local.queue_bindings import HostQueueOptions
from batchfx.local.queue_poller import serve_queues, worker_main
from batchfx.local.timers import TimerDriver
from batchfx.services.blob_drops import EVENT_SUBJECT_SUFFIXES

__all__ = ["LocalRunner"]

logger = logging.getLogger(__name__)

_HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"


class LocalRunner:
    """Serve the app locally: ``with LocalRunner(settings) as runner: runner.url``.

    Each worker is an instance of the app pulling its queues: a process of its own (as
    the Functions host runs its language worker), restarted when it dies; or, with
    ``in_process`` (one instance, as ``batchfx run`` uses), a thread of this process, which
    spares a Python process. Either way scoring scripts run in processes of their own.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 2,
        host: str = "127.0.0.1",
        port: int = 0,
        function_key: str | None = None,
        message_lease_s: float = 30.0,
        log_level: str = "WARNING",
        in_process: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers: got {workers} — expected 1 or more worker processes")
        if in_process and workers != 1:
            raise ValueError(f"in_process: runs one instance in this process; got workers="
                             f"{workers} — use worker processes for more")
        self.settings = settings
        self.function_key = function_key if function_key is not None else secrets.token_hex(16)
        self._workers = workers
        self._host, self._port = host, port
        self._options = HostQueueOptions.from_host_json(_HOST_JSON,
                                                        message_lease_s=message_lease_s)
        self._log_level = log_level
        self._processes: list[BaseProcess] = []
        self._in_process = in_process
        self._instance: threading.Thread | None = None
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._http: FunctionsHttpServer | None = None
        self.durable: LocalDurableRuntime | None = None
        self.timers: TimerDriver | None = None
        self.blob_events: BlobEventEmulator | None = None
        self.worker_restarts = 0

    @property
    def url(self) -> str:
        """Base URL of the HTTP functions (``{url}/api/jobs``)."""
        if self._http is None:
            raise RuntimeError("the runner is not started: call start() first")
        return self._http.url

    def start(self, *, storage_ready: Callable[[], object] | None = None) -> LocalRunner:
        """Start the worker processes (they wait for the storage), wait for
        ``storage_ready`` (an Azurite still starting, say), create storage resources, then
        start the HTTP server, orchestrators and timers."""
        if not self._in_process:
            for _ in range(self._workers):  # first: their start-up overlaps what follows
                self._processes.append(self._spawn())
        try:
            if storage_ready is not None:
                storage_ready()
            self._start_host()
            if self._in_process:  # the queues pulled by a thread of this process
                self._instance = threading.Thread(
                    target=serve_queues, name="batchfx-instance", daemon=True,
                    args=(self.settings, {**os.environ, **self.settings.to_env()},
                          self._options, self._stop))
                self._instance.start()
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="batchfx-supervisor",
                                            daemon=True)
        self._supervisor.start()
        logger.info("local runner at %s with %d workers", self.url, self._workers)
        return self

    def _start_host(self) -> None:
        app_context.use_settings(self.settings)
        storage = app_context.storage()
        storage.ensure_resources()
        app = load_app()
        durable_container = f"{self.settings.jobs_container}-durable"
        store = BlobInstanceStore(storage.blobs, durable_container)
        self.durable = LocalDurableRuntime(app, store)
        self.durable.system_key = self.function_key
        self._http = FunctionsHttpServer(app, host=self._host, port=self._port,
                                         function_key=self.function_key, durable=self.durable)
        self._http.start()
        self.durable.start()
        durable, http_url = self.durable, self._http.url
        # Timer functions (schedules) get the Durable client the HTTP functions get.
        self.timers = TimerDriver(app, client_binding=lambda: durable.client_binding(http_url))
        self.timers.start()
        # Blob-drop triggers: Event Grid's deliveries, filtered as the subscription is.
        self.blob_events = BlobEventEmulator(
            app, storage, {**os.environ, **self.settings.to_env()},
            lambda: durable.client_binding(http_url),
            poll_interval=min(self.settings.poll_interval_s, 1.0),
            subject_ends_with=EVENT_SUBJECT_SUFFIXES).start()

    def _spawn(self) -> BaseProcess:
        env = {**os.environ, **self.settings.to_env()}
        process = multiprocessing.get_context("spawn").Process(
            target=worker_main, args=(env, self._options, self._log_level, os.getpid()),
            name="batchfx-worker", daemon=False)
        process.start()
        return process

    def _supervise(self) -> None:
        # The host starts a new worker process when one dies (OOM, kill -9).
        while not self._stop.wait(0.5):
            for i, process in enumerate(self._processes):
                if not process.is_alive() and not self._stop.is_set():
                    logger.warning("worker %s exited with %s; starting a new one", process.pid,
                                   process.exitcode)
                    self._processes[i] = self._spawn()
                    self.worker_restarts += 1

    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the live worker processes."""
        return [p.pid for p in self._processes if p.pid is not None and p.is_alive()]

    def stop(self) -> None:
        """Stop workers (after their current message), orchestrators and the HTTP server."""
        self._stop.set()
        if self.timers is not None:
            self.timers.stop()
            self.timers = None
        if self.blob_events is not None:
            self.blob_events.stop()
            self.blob_events = None
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        if self._instance is not None:  # it finishes the messages under way
            self._instance.join()
            self._instance = None
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self._processes:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join()
        self._processes.clear()
        if self.durable is not None:
            self.durable.stop()
            self.durable = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        app_context.use_settings(None)

    def __enter__(self) -> LocalRunner:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
