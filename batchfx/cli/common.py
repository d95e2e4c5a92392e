"""What the ``batchfx`` commands share: the console, the app they talk to (a running
``batchfx serve``, or --url/--key), storage for uploads and downloads, watching a job and
reporting how it ended, and the options that say so."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from batchfx.cli.client import ApiClient
from batchfx.core.records import JobState
from batchfx.core.settings import Settings

if TYPE_CHECKING:
    from batchfx.storage import Storage

__all__ = ["FINAL", "STATE_FILE", "api_for", "connection_for", "connection_option",
           "console", "forget_user_state", "key_option", "reads_in_place", "report",
           "say", "serve_state", "storage_for", "uploader", "url_option", "user_state_file",
           "watch", "write_state"]

# Commands import the storage SDKs, the spec model and the local runner themselves: their
# imports take half a second, which `batchfx run` spends while its Azurite starts.
console = Console(stderr=True)
STATE_FILE = Path(".batchfx") / "serve.json"
FINAL = {s.value for s in JobState if s.is_final}


def storage_for(connection_string: str | None) -> Storage:
    from batchfx.storage import Storage

    settings = Settings.from_env(os.environ)
    if connection_string:
        settings = Settings(**{**settings.__dict__, "connection_string": connection_string})
    return Storage.from_settings(settings)


def user_state_file() -> Path:
    """The running ``batchfx serve`` for this user, found from any folder
    (``$BATCHFX_STATE_DIR``, else ``$XDG_STATE_HOME/batchfx``, else ~/.local/state/batchfx)."""
    base = os.environ.get("BATCHFX_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "batchfx")
    return Path(base) / "serve.json"


def serve_state() -> dict[str, Any]:
    """This folder's serve, else the user's latest serve (empty: none running)."""
    for path in (STATE_FILE, user_state_file()):
        if path.is_file():
            try:
                return dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
    return {}


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the key
    with os.fdopen(fd, "w") as stream:
        json.dump(state, stream)


def api_for(url: str | None, key: str | None) -> ApiClient:
    state = serve_state()
    url = url or os.environ.get("BATCHFX_URL") or state.get("url")
    if not url:
        raise click.UsageError("no app to talk to: start `batchfx serve`, or give --url "
                               "(or BATCHFX_URL) of a deployed app")
    return ApiClient(url, key or os.environ.get("BATCHFX_KEY") or state.get("key"))


def reads_in_place(url: str | None) -> bool:
    """Whether jobs go to the `batchfx serve` of this folder, which reads local folders."""
    state = serve_state()
    target = url or os.environ.get("BATCHFX_URL") or state.get("url")
    return bool(state.get("local_roots")) and target == state.get("url")


def connection_for(value: str | None) -> str | None:
    return value or Settings.from_env(os.environ).connection_string or serve_state().get(
        "connection_string")


def forget_user_state(url: str) -> None:
    """Remove the user's state file if it still names this serve (not a newer one)."""
    path = user_state_file()
    try:
        if json.loads(path.read_text()).get("url") == url:
            path.unlink()
    except (OSError, ValueError):
        pass


def watch(api: ApiClient, job_id: str, quiet: bool) -> dict[str, Any]:
    """Poll a job with a progress bar until it ends."""
    columns = [TextColumn("[bold]{task.fields[state]:<12}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("items  {task.fields[failed]} failed  {task.fields[rate]}/s  "
                          "ETA {task.fields[eta]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task(job_id, total=None, state="queued", failed=0, rate="-", eta="-")
        while True:
            view = api.get(job_id)
            items = view.get("items", {})
            eta = view.get("eta_seconds")
            bar.update(task, total=items.get("total") or None,
                       completed=items.get("succeeded", 0) + items.get("failed", 0),
                       state=view["state"], failed=items.get("failed", 0),
                       rate=view.get("items_per_second", "-"),
                       eta="-" if eta is None else f"{eta:.0f}s")
            if view["state"] in FINAL and view.get("outputs_ready"):
                return view
            batches = view.get("mini_batches", {})
            ending = view["state"] in FINAL or view["state"] == "finalizing" or (
                view.get("partitioned") and batches.get("pending", 1) <= batches.get("running", 0))
            time.sleep(0.25 if ending else 1.0)  # a job about to end: its outputs soon


def report(view: dict[str, Any]) -> None:
    items, batches = view.get("items", {}), view.get("mini_batches", {})
    console.print(f"job [bold]{view['id']}[/] {view['state']}: {items.get('succeeded', 0)} of "
                  f"{items.get('total', 0)} items succeeded, {items.get('failed', 0)} failed "
                  f"({batches.get('failed', 0)} of {batches.get('total', 0)} mini-batches failed)")
    if view.get("reason") and view["state"] != "completed":
        console.print(f"reason: {view['reason']}")


url_option = click.option("--url", help="App URL (default: BATCHFX_URL or the running serve).")
key_option = click.option("--key",
                          help="Function key (default: BATCHFX_KEY or the running serve).")
connection_option = click.option("--connection-string",
                                 help="Storage for uploading local folders (default: "
                                      "AzureWebJobsStorage or the running serve's).")


def say(text: str) -> None:
    """A message for the user (stderr: stdout carries what scripts read)."""
    console.print(text)


def uploader(connection_string: str | None, base: Path) -> Callable[[Any, str], Any]:
    """A function: a path that exists on this machine → its uploaded container/prefix."""
    from batchfx.core.pipelines import placeholders
    from batchfx.services.upload import upload_folder

    storage: Storage | None = None

    def upload(value: Any, kind: str) -> Any:
        nonlocal storage
        if not isinstance(value, str) or placeholders(value):
            return value
        local = Path(value) if os.path.isabs(value) else base / value
        if not local.exists():
            return value  # container/prefix in the app's storage
        if storage is None:
            connection = connection_for(connection_string)
            if not connection:
                raise click.UsageError(f"{value!r} is a local folder: give --connection-string "
                                       "(or AzureWebJobsStorage) to upload it")
            storage = storage_for(connection)
        return upload_folder(storage, local, kind)

    return upload
