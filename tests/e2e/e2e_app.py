"""End-to-end helpers: an isolated app (own container, queue, tables) on the module's
Azurite, served by the real local runner, driven through the HTTP API. The ``app`` fixture
(conftest.py) builds one per test; tests import ``App`` and ``lines`` from here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchfx.cli.client import ApiClient
from batchfx.core.settings import Settings
from batchfx.local.runner import LocalRunner
from batchfx.services.upload import download_outputs
from batchfx.storage import Storage

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
FINAL = {"completed", "failed", "aborted", "canceled"}


@dataclass
class App:
    """One isolated batchfx app: settings, storage, a runner and an API client."""

    settings: Settings
    storage: Storage
    tmp: Path
    runner: LocalRunner | None = None
    api: ApiClient | None = None
    runners: list[LocalRunner] = field(default_factory=list)

    def start(self, workers: int = 2) -> LocalRunner:
        """Start (or start again) a local runner on this app's storage."""
        runner = LocalRunner(self.settings, workers=workers, message_lease_s=3.0)
        runner.start()
        self.runners.append(runner)
        self.runner = runner
        self.api = ApiClient(runner.url, runner.function_key)
        return runner

    def stop(self) -> None:
        """Stop the current runner."""
        if self.runner is not None:
            self.runner.stop()
            self.runner = None

    def upload_inputs(self, files: dict[str, str], prefix: str = "inputs") -> str:
        """Upload input files (name → text) into the app's container; returns the path."""
        container = self.settings.jobs_container
        for name, text in files.items():
            self.storage.blobs.upload(container, f"{prefix}/{name}", text.encode())
        return f"{container}/{prefix}"

    def upload_tabular(self, name: str, body: bytes) -> str:
        """Upload one tabular input file under ``tabular/``; returns its storage path."""
        container = self.settings.jobs_container
        self.storage.blobs.upload(container, f"tabular/{name}", body)
        return f"{container}/tabular/{name}"

    def tabular_spec(self, job: str, script: str, path: str, fmt: str,
                     **changes: Any) -> dict[str, Any]:
        """A job spec over the tabular input ``path`` scored by tests/scripts/``script``."""
        spec: dict[str, Any] = {
            "name": job,
            "entry_script": "score.py",
            "source_directory": self.upload_script(script),
            "inputs": {"path": path, "type": "tabular", "format": fmt},
            "output": f"{self.settings.jobs_container}-out/results",
            "output_format": "csv",
            "run_invocation_timeout": 60,
        }
        spec.update(changes)
        return spec

    def upload_script(self, script: str, folder: str = "code") -> str:
        """Upload one fixture script from tests/scripts as ``score.py``."""
        container = self.settings.jobs_container
        self.storage.blobs.upload(container, f"{folder}/score.py",
                                  (SCRIPTS / script).read_bytes())
        return f"{container}/{folder}"

    def spec(self, script: str, files: dict[str, str], **overrides: Any) -> dict[str, Any]:
        """A job spec over ``files`` scored by tests/scripts/``script``."""
        spec: dict[str, Any] = {
            "name": "e2e-job",
            "entry_script": "score.py",
            "source_directory": self.upload_script(script),
            "inputs": self.upload_inputs(files),
            "output": f"{self.settings.jobs_container}-out/results",
            "mini_batch_size": 2,
            "run_invocation_timeout": 30,
        }
        spec.update(overrides)
        return spec

    def submit(self, spec: dict[str, Any]) -> str:
        """Submit through the HTTP function; returns the job id."""
        assert self.api is not None
        return str(self.api.submit(spec)["id"])

    def wait(self, job_id: str, timeout: float = 120.0,
             until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Poll GET /api/jobs/{id} until the job ends (or ``until`` holds)."""
        assert self.api is not None
        deadline = time.monotonic() + timeout
        while True:
            view = self.api.get(job_id)
            if (until or _ended)(view):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} did not get there in {timeout}s: {view}")
            time.sleep(0.2)

    def outputs(self, view: dict[str, Any]) -> dict[str, str]:
        """Download the job's outputs; returns relative name → text."""
        dest = self.tmp / f"out-{view['id']}"
        files = download_outputs(self.storage, view["output"]["location"], dest)
        return {p.relative_to(dest).as_posix(): p.read_text(errors="replace") for p in files}


def _ended(view: dict[str, Any]) -> bool:
    return view["state"] in FINAL and bool(view["outputs_ready"])


def lines(text: str) -> list[str]:
    """Non-empty lines of a text file."""
    return [line for line in text.splitlines() if line.strip()]
