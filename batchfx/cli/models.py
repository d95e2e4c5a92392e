"""``batchfx model …``: register a model folder (uploaded once per content), list, show."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from batchfx.cli.common import (
    api_for,
    connection_option,
    key_option,
    say,
    uploader,
    url_option,
)

__all__ = ["model"]


@click.group()
def model() -> None:
    """Registered models: name + version, named by jobs as name:version or azureml:name@latest."""


@model.command(name="create")
@click.option("--name", required=True, help="The model's name, e.g. digits-clf.")
@click.option("--path", "path", required=True,
              help="A local folder or file (uploaded), or container/prefix in the app's storage.")
@click.option("--description", default="", help="Shown by `batchfx model show`.")
@url_option
@key_option
@connection_option
def create_model(name: str, path: str, description: str, url: str | None, key: str | None,
                 connection_string: str | None) -> None:
    """Register PATH as the next version of model NAME (the same content: the same version)."""
    local = Path(path) if os.path.isabs(path) else Path.cwd() / path
    if not local.exists() and (path.startswith(".") or os.path.isabs(path)):
        raise click.BadParameter(f"{path!r} does not exist (looked for {local})",
                                 param_hint="--path")
    stored = api_for(url, key).post("models", {
        "name": name, "description": description,
        "path": uploader(connection_string, Path.cwd())(path, "model")})
    what = "registered" if stored["registered"] else "unchanged:"
    say(f"{what} model [bold]{stored['name']}[/] version {stored['version']} "
         f"({stored['path']})")
    click.echo(stored["reference"])


@model.command(name="list")
@url_option
@key_option
def list_models(url: str | None, key: str | None) -> None:
    """List models (latest versions): name, version, created, description."""
    for item in api_for(url, key).listed("models"):
        click.echo(f"{item['name']}\t{item['version']}\t{item['created']}\t"
                   f"{item['description']}")


@model.command(name="show")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), help="A version (default: the latest).")
@url_option
@key_option
def show_model(name: str, version: int | None, url: str | None, key: str | None) -> None:
    """Show a model version as JSON."""
    query = f"?version={version}" if version else ""
    click.echo(json.dumps(api_for(url, key).show("models", name, query), indent=2))
