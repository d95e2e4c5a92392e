"""``batchfx upload LOCAL container/prefix``: put local data where a job or pipeline reads it."""

from __future__ import annotations

from pathlib import Path

import click

from batchfx.cli.common import connection_for, connection_option, say, storage_for

__all__ = ["upload"]


@click.command()
@click.argument("local", type=click.Path(exists=True, path_type=Path))
@click.argument("destination")
@connection_option
def upload(local: Path, destination: str, connection_string: str | None) -> None:
    """Upload LOCAL (a folder or file) to DESTINATION (container/prefix in the app's storage),
    keeping relative names: e.g. `batchfx upload ./day1 data/2024-05-01` for a pipeline whose
    inputs are data/${{parameters.day}}. Files already there (same size and MD5) are skipped,
    so running it again finishes an upload that stopped."""
    from batchfx.core.spec import split_storage_path
    from batchfx.services.upload import upload_tree

    container, prefix = split_storage_path("destination", destination)
    connection = connection_for(connection_string)
    if not connection:
        raise click.UsageError("no storage to upload to: start `batchfx serve` (its storage is "
                               "used), or give --connection-string (or AzureWebJobsStorage)")
    sent, kept = upload_tree(storage_for(connection), local.resolve(), container, prefix)
    say(f"uploaded {sent} files to {destination} ({kept} already there)")
    click.echo(destination)
