"""``batchfx deployment …`` and ``batchfx pipeline …``: register, list, show, delete, run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from batchfx.cli.client import ApiClient
from batchfx.cli.common import (
    api_for,
    connection_option,
    key_option,
    report,
    say,
    uploader,
    url_option,
    watch,
)
from batchfx.core.errors import SpecError

__all__ = ["deployment", "pipeline"]

def _parameters(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"got {pair!r} — expected NAME=VALUE, e.g. top_k=5",
                                     param_hint="--param")
        out[name] = value
    return out


def _upload_code(record: dict[str, Any], base: Path, connection_string: str | None) -> None:
    """Replace local code, model and side input folders in ``record`` by uploaded snapshots."""
    from batchfx.core.models import map_model_path

    upload = uploader(connection_string, base)
    code = record.get("source_directory")
    if isinstance(code, str) and (base / code).is_dir() and "entry_script" in record and \
            not (base / code / str(record["entry_script"])).is_file():
        raise SpecError([f"entry_script: {record['entry_script']!r} not found in "
                         f"source_directory {str(base / code)!r}"])
    record["source_directory"] = upload(code, "code")
    if record.get("model"):
        record["model"] = map_model_path(record["model"], lambda v: upload(v, "model"))
    settings: dict[str, Any] = record.get("settings", record)  # a deployment, or a job
    if isinstance(settings.get("models"), list):
        settings["models"] = [map_model_path(v, lambda p: upload(p, "model"))
                              for v in settings["models"]]
    side = settings.get("side_inputs")
    if isinstance(side, dict):
        settings["side_inputs"] = {k: upload(v, "side") for k, v in side.items()}


def _finish(api: ApiClient, job_id: str, wait: bool) -> None:
    click.echo(job_id)
    if wait:
        view = watch(api, job_id, False)
        report(view)
        sys.exit(0 if view["state"] == "completed" else 1)


@click.group()
def deployment() -> None:
    """Named, versioned scoring configurations (code, model, job settings)."""


@deployment.command(name="create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@key_option
@connection_option
def create_deployment(file: Path, url: str | None, key: str | None,
                      connection_string: str | None) -> None:
    """Register FILE (batchfx or Azure ML v2 batch deployment YAML); local folders are uploaded."""
    from batchfx.core.deployments import load_document, parse_deployment

    record = parse_deployment(load_document(file)).to_record()
    _upload_code(record, file.resolve().parent, connection_string)
    stored = api_for(url, key).post("deployments", record)
    what = "registered" if stored["registered"] else "unchanged:"
    say(f"{what} deployment [bold]{stored['name']}[/] version {stored['version']} "
         f"(code {stored['source_directory']})")
    click.echo(f"{stored['name']}@{stored['version']}")


@deployment.command(name="list")
@url_option
@key_option
def list_deployments(url: str | None, key: str | None) -> None:
    """List deployments (latest versions)."""
    for item in api_for(url, key).listed("deployments"):
        click.echo(f"{item['name']}\t{item['version']}\t{item['created']}\t"
                   f"{item['description']}")


@deployment.command(name="show")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), help="A version (default: the latest).")
@url_option
@key_option
def show_deployment(name: str, version: int | None, url: str | None, key: str | None) -> None:
    """Show a deployment as JSON."""
    query = f"?version={version}" if version else ""
    click.echo(json.dumps(api_for(url, key).show("deployments", name, query), indent=2))


@deployment.command(name="delete")
@click.argument("name")
@url_option
@key_option
def delete_deployment(name: str, url: str | None, key: str | None) -> None:
    """Delete a deployment; jobs already started keep running."""
    done = api_for(url, key).delete("deployments", name)
    click.echo(f"{done['name']} deleted (latest version {done['version']})")


@deployment.command(name="invoke")
@click.argument("name")
@click.option("--input", "input_path", required=True,
              help="A local folder (uploaded) or container/prefix in the app's storage.")
@click.option("--output", help="container/prefix for the results (default: the deployment's).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Passed to the script as --NAME VALUE and BATCHFX_PARAM_NAME.")
@click.option("--version", type=click.IntRange(min=1), help="A version (default: the latest).")
@click.option("--wait", is_flag=True, help="Show progress until the job ends.")
@url_option
@key_option
@connection_option
def invoke_deployment(name: str, input_path: str, output: str | None, params: tuple[str, ...],
                      version: int | None, wait: bool, url: str | None, key: str | None,
                      connection_string: str | None) -> None:
    """Run a deployment over an input folder."""
    body: dict[str, Any] = {
        "inputs": uploader(connection_string, Path.cwd())(input_path, "inputs")}
    if Path(input_path).is_file():
        body["inputs"] = {"path": body["inputs"], "type": "uri_file"}
    if output:
        body["output"] = output
    if params:
        body["parameters"] = _parameters(params)
    if version:
        body["version"] = version
    api = api_for(url, key)
    _finish(api, api.post(f"deployments/{name}/jobs", body)["id"], wait)


@click.group()
def pipeline() -> None:
    """Published pipelines: job templates with parameters, run over REST."""


@pipeline.command(name="publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@key_option
@connection_option
def publish_pipeline(file: Path, url: str | None, key: str | None,
                     connection_string: str | None) -> None:
    """Publish FILE; local code and model folders of a job template are uploaded."""
    from batchfx.core.deployments import load_document
    from batchfx.core.pipelines import parse_pipeline

    record = parse_pipeline(load_document(file, "pipeline")).to_record()
    if isinstance(record.get("job"), dict):
        _upload_code(record["job"], file.resolve().parent, connection_string)
    stored = api_for(url, key).post("pipelines", record)
    what = "published" if stored["published"] else "unchanged:"
    say(f"{what} pipeline [bold]{stored['name']}[/] version {stored['version']} "
         f"at {stored['endpoint']}")
    click.echo(f"{stored['name']}@{stored['version']}")


@pipeline.command(name="list")
@url_option
@key_option
def list_pipelines(url: str | None, key: str | None) -> None:
    """List pipelines (latest versions)."""
    for item in api_for(url, key).listed("pipelines"):
        names = ", ".join(item["parameters"])
        click.echo(f"{item['name']}\t{item['version']}\t{item['created']}\t{names}")


@pipeline.command(name="show")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), help="A version (default: the latest).")
@url_option
@key_option
def show_pipeline(name: str, version: int | None, url: str | None, key: str | None) -> None:
    """Show a pipeline as JSON."""
    query = f"?version={version}" if version else ""
    click.echo(json.dumps(api_for(url, key).show("pipelines", name, query), indent=2))


@pipeline.command(name="delete")
@click.argument("name")
@url_option
@key_option
def delete_pipeline(name: str, url: str | None, key: str | None) -> None:
    """Delete a pipeline; jobs already started keep running."""
    done = api_for(url, key).delete("pipelines", name)
    click.echo(f"{done['name']} deleted (latest version {done['version']})")


@pipeline.command(name="run")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A parameter assignment (strings are converted to the declared type).")
@click.option("--experiment", help="Experiment name, kept as the job's tag.")
@click.option("--wait", is_flag=True, help="Show progress until the job ends.")
@url_option
@key_option
def run_pipeline(name: str, params: tuple[str, ...], experiment: str | None, wait: bool,
                 url: str | None, key: str | None) -> None:
    """Run a published pipeline with parameter assignments."""
    body: dict[str, Any] = {"ParameterAssignments": _parameters(params)}
    if experiment:
        body["ExperimentName"] = experiment
    api = api_for(url, key)
    _finish(api, api.post(f"pipelines/{name}", body)["Id"], wait)
