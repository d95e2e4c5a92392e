"""The ``batchfx`` command: run a job locally, or talk to a running app."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import click

from batchfx.cli.client import ApiClient
from batchfx.cli.common import (
    STATE_FILE,
    api_for,
    connection_for,
    console,
    forget_user_state,
    key_option,
    reads_in_place,
    report,
    storage_for,
    url_option,
    user_state_file,
    watch,
    write_state,
)
from batchfx.cli.deployments import deployment, pipeline
from batchfx.cli.drops import drops
from batchfx.cli.image import image
from batchfx.cli.models import model
from batchfx.cli.schedules import schedule
from batchfx.cli.upload import upload
from batchfx.core.errors import BatchfxError
from batchfx.core.settings import Settings


# Commands import the storage SDKs, the spec model and the local runner themselves: their
# imports take half a second, which `batchfx run` spends while its Azurite starts.
def _stop_on_terminate() -> None:
    """SIGTERM (``kill``, a service manager) and SIGHUP (the terminal closed) stop the
    command as Ctrl-C does: its workers finish their message and its Azurite stops,
    instead of being left running without it."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for name in ("SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), interrupt)


@click.group()
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(log_level: str) -> None:
    """Azure-ML-style batch inference on Azure Functions (and on this machine)."""
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")


def _instances_here(node_count: int, processes: int) -> int:
    """How many of a spec's instances run on this machine: node_count, at most as many as
    its CPUs hold at ``processes`` script processes each (a cluster-sized spec on a laptop
    would start node_count times processes of them)."""
    cores = os.cpu_count() or 1
    fits = max(1, cores // max(1, processes))
    if node_count > fits:
        console.print(f"node_count {node_count}: {fits} instance(s) on this machine ({cores} "
                      f"CPUs, {processes} script processes each); --workers N to choose")
    return min(node_count, fits)


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "output_dir", required=True, type=click.Path(path_type=Path),
              help="Folder to download the results, summary and reports into.")
@click.option("--connection-string", help="Storage to use (default: AzureWebJobsStorage, "
              "else a private Azurite started for this run).")
@click.option("--workers", type=int, help="Worker processes, each an instance running "
              "process_count_per_node script processes (default: node_count of the spec, "
              "at most what this machine's CPUs hold).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(spec_file: Path, output_dir: Path, connection_string: str | None, workers: int | None,
        quiet: bool) -> None:
    """Run a job end to end on this machine and download its outputs."""
    from batchfx.local.azurite import Azurite
    from batchfx.services.upload import download_problem

    problem = download_problem(output_dir)  # before anything runs
    if problem:
        raise click.UsageError(f"--output: {problem}")
    connection = connection_string or Settings.from_env(os.environ).connection_string
    _stop_on_terminate()
    with ExitStack() as stack:
        azurite = None
        if not connection:  # launched first, not waited for: the rest starts meanwhile
            azurite = Azurite()
            stack.callback(azurite.stop)
            connection = azurite.start(wait=False).connection_string
        from batchfx.core.spec import load_job_spec
        from batchfx.local.runner import LocalRunner
        from batchfx.services.upload import download_outputs, in_place_paths
        from batchfx.storage import Storage

        spec, spec_dir = load_job_spec(spec_file)
        # Local folders are read where they are (the workers share this machine); with a
        # private Azurite nothing else can exist, so a path not found here is a mistake.
        record, folders = in_place_paths(spec.to_record(), spec_dir,
                                         storage_paths=azurite is None)
        settings = Settings(**{**Settings.from_env(os.environ).__dict__,
                               "connection_string": connection, "poll_interval_s": 1.0,
                               "local_roots": tuple(folders)})
        storage = Storage.from_settings(settings)
        count = workers or _instances_here(spec.node_count, spec.process_count_per_node)
        runner = LocalRunner(settings, workers=count, in_process=count == 1)
        stack.callback(runner.stop)
        runner.start(storage_ready=azurite.wait_ready if azurite else None)
        if azurite is not None:
            console.print(f"started Azurite (blob port {azurite.blob_port})")
        api = ApiClient(runner.url, runner.function_key)
        job = api.submit(record)
        console.print(f"submitted job [bold]{job['id']}[/] ({count} instance(s) of "
                      f"{spec.process_count_per_node} script processes)")
        view = watch(api, job["id"], quiet)
        files = download_outputs(storage, view["output"]["location"], output_dir)
    report(view)
    console.print(f"outputs ({len(files)} files) in {output_dir}/")
    if view["output"].get("append_row_file") and view["state"] == "completed":
        name = view["output"]["append_row_file"].rsplit("/", 1)[-1]
        click.echo(str(output_dir / name))
    sys.exit(0 if view["state"] == "completed" else 1)


@main.command()
@click.option("--port", default=7071, show_default=True, type=int)
@click.option("--connection-string", help="Storage to use (default: AzureWebJobsStorage, "
              "else Azurite with its data in .batchfx/azurite).")
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--key", help="Function key clients must send (default: a new random one).")
@click.option("--local-root", "local_roots", multiple=True, default=["/"], show_default=True,
              type=click.Path(exists=True, file_okay=False, resolve_path=True),
              help="A folder of this machine under which jobs may name local folders, read "
              "in place (repeat for several).")
def serve(port: int, connection_string: str | None, workers: int, key: str | None,
          local_roots: tuple[str, ...]) -> None:
    """Serve the app locally until Ctrl-C; jobs resume when it is started again."""
    from batchfx.local.azurite import Azurite
    from batchfx.local.runner import LocalRunner

    connection = connection_string or Settings.from_env(os.environ).connection_string
    _stop_on_terminate()
    with ExitStack() as stack:
        if not connection:
            azurite = stack.enter_context(Azurite(location=str(Path(".batchfx") / "azurite")))
            connection = azurite.connection_string
        settings = Settings(**{**Settings.from_env(os.environ).__dict__,
                               "connection_string": connection, "poll_interval_s": 1.0,
                               "local_roots": tuple(local_roots)})
        runner = stack.enter_context(LocalRunner(settings, workers=workers, port=port,
                                                 function_key=key or os.environ.get(
                                                     "BATCHFX_KEY")))
        state = {"url": runner.url, "key": runner.function_key,
                 "connection_string": connection, "local_roots": list(local_roots)}
        for path in (STATE_FILE, user_state_file()):
            write_state(path, state)
        console.print(f"batchfx serving {runner.url}/api/jobs with {workers} workers "
                      f"(key in {STATE_FILE} and {user_state_file()}, so batchfx commands "
                      "find it from any folder); Ctrl-C to stop")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping")
        finally:
            STATE_FILE.unlink(missing_ok=True)
            forget_user_state(runner.url)




@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@key_option
@click.option("--connection-string", help="Storage for uploading local folders.")
@click.option("--wait", is_flag=True, help="Show progress until the job ends.")
def submit(spec_file: Path, url: str | None, key: str | None, connection_string: str | None,
           wait: bool) -> None:
    """Submit a job; local folders in the spec are read in place by a `batchfx serve` of
    this folder, else uploaded first."""
    from batchfx.core.spec import load_job_spec
    from batchfx.services.upload import in_place_paths, upload_local_paths

    spec, spec_dir = load_job_spec(spec_file)
    api = api_for(url, key)
    record = spec.to_record()
    connection = connection_for(connection_string)
    if reads_in_place(url):  # `batchfx serve` on this machine: no upload
        record, _ = in_place_paths(record, spec_dir)
    elif connection:
        record = upload_local_paths(storage_for(connection), record, spec_dir)
    job = api.submit(record)
    click.echo(job["id"])
    if wait:
        view = watch(api, job["id"], False)
        report(view)
        sys.exit(0 if view["state"] == "completed" else 1)


@main.command()
@click.argument("job_id")
@url_option
@key_option
def status(job_id: str, url: str | None, key: str | None) -> None:
    """Show a job's state, counts, throughput and ETA as JSON."""
    click.echo(json.dumps(api_for(url, key).get(job_id), indent=2))


@main.command(name="list")
@url_option
@key_option
def list_(url: str | None, key: str | None) -> None:
    """List recent jobs: id, state, created, and for an ended job its items succeeded,
    failed and total."""
    for job in api_for(url, key).list():
        items = job.get("items")
        counts = (f"\t{items['succeeded']}/{items['total']} items, {items['failed']} failed"
                  if items else "")
        click.echo(f"{job['id']}\t{job['state']}\t{job['created']}{counts}")


@main.command()
@click.argument("job_id")
@url_option
@key_option
def cancel(job_id: str, url: str | None, key: str | None) -> None:
    """Cancel a job that has not ended."""
    view = api_for(url, key).cancel(job_id)
    click.echo(f"{view['id']} {view['state']}")


@main.command()
@click.argument("job_id")
@click.argument("dest", type=click.Path(path_type=Path))
@url_option
@key_option
@click.option("--connection-string", help="Storage holding the outputs.")
def download(job_id: str, dest: Path, url: str | None, key: str | None,
             connection_string: str | None) -> None:
    """Download a job's outputs (results, summary, reports, logs) into DEST."""
    view = api_for(url, key).get(job_id)
    connection = connection_for(connection_string)
    if not connection:
        raise click.UsageError("give --connection-string (or AzureWebJobsStorage) of the "
                               "storage holding the outputs")
    from batchfx.services.upload import download_outputs

    files = download_outputs(storage_for(connection), view["output"]["location"], dest)
    click.echo(f"{len(files)} files in {dest}")


def _add_commands() -> None:
    for command in (deployment, pipeline, schedule, drops, model, upload, image):
        main.add_command(command)


_add_commands()


def entry() -> None:
    """Console entry that prints batchfx errors without a traceback."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except BatchfxError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)
