"""Table storage: the only place batchfx calls azure-data-tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from batchfx.core.errors import StorageNotFoundError
from batchfx.core.settings import Settings
from batchfx.storage.clients import (
    client_transport,
    credential_for,
    sdk_errors,
    service_url,
    table_retry_options,
)

__all__ = ["Entity", "TableStore"]


@dataclass(frozen=True)
class Entity:
    """A table row and the ETag that conditional updates must match."""

    values: dict[str, Any]
    etag: str


# The blob and queue SDKs default to 20 s to connect and 60 s per read; azure-core's
# defaults, which the table SDK keeps, are 300 s each: a stalled connection would pin a
# worker (its message lease renewed all along) or an orchestrator activity for 5 minutes.
_CONNECT_S, _READ_S = 20, 60


class TableStore:
    """Table operations batchfx needs, with SDK errors turned into batchfx errors."""

    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._clients: dict[str, TableClient] = {}

    def _table(self, name: str) -> TableClient:
        # A client per table, kept: building one costs a tenth of a call's CPU.
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._service.get_table_client(name)
        return client

    @classmethod
    def from_settings(cls, settings: Settings) -> TableStore:
        """Connect with the connection string, or with a managed identity."""
        options = {"connection_timeout": _CONNECT_S, "read_timeout": _READ_S,
                   "transport": client_transport(), **table_retry_options(settings)}
        if settings.connection_string:
            return cls(TableServiceClient.from_connection_string(settings.connection_string,
                                                                 **options))
        url = service_url(settings, "table")
        return cls(TableServiceClient(url, credential=credential_for(settings), **options))

    def ensure_table(self, name: str) -> None:
        """Create the table if it does not exist."""
        with sdk_errors(f"creating table {name!r}"), contextlib.suppress(ResourceExistsError):
            self._service.create_table(name)

    def get(self, table: str, partition: str, row: str) -> Entity | None:
        """One row, or None when it does not exist."""
        try:
            with sdk_errors(f"reading {table}/{partition}/{row}"):
                found = self._table(table).get_entity(partition, row)
        except StorageNotFoundError:
            return None
        return Entity(dict(found), str(found.metadata["etag"]))

    def insert(self, table: str, values: Mapping[str, Any]) -> str:
        """Create a row; ConflictError when it exists already. Returns the new ETag."""
        with sdk_errors(f"creating a row in {table}"):
            # No entity echoed back: the reply's ETag is all batchfx reads of it.
            meta = self._table(table).create_entity(dict(values),
                                                    response_preference="return-no-content")
        return str(meta["etag"])

    def replace(self, table: str, values: Mapping[str, Any], *, etag: str | None) -> str:
        """Overwrite a row; with ``etag``, only if nobody changed it since (else ConflictError)."""
        client = self._table(table)
        with sdk_errors(f"writing a row in {table}"):
            if etag is None:
                meta = client.upsert_entity(dict(values), mode=UpdateMode.REPLACE)
            else:
                meta = client.update_entity(
                    dict(values),
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        return str(meta["etag"])

    def merge(self, table: str, values: Mapping[str, Any], *, etag: str | None = None) -> str:
        """Update some columns of an existing row (conditionally with ``etag``)."""
        client = self._table(table)
        with sdk_errors(f"updating a row in {table}"):
            if etag is None:
                meta = client.update_entity(dict(values), mode=UpdateMode.MERGE)
            else:
                meta = client.update_entity(
                    dict(values),
                    mode=UpdateMode.MERGE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        return str(meta["etag"])

    def query(
        self, table: str, partition: str, *, select: list[str] | None = None,
        since: datetime | None = None, from_key: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row of one partition (written at or after ``since``, by the service's
        ``Timestamp``; with a RowKey from ``from_key`` on), page by page; ``Timestamp`` is
        in each row when selected."""
        client = self._table(table)
        query, parameters = "PartitionKey eq @pk", dict[str, Any](pk=partition)
        if from_key is not None:
            query, parameters = f"{query} and RowKey ge @rk", {**parameters, "rk": from_key}
        if since is not None:
            query, parameters = f"{query} and Timestamp ge @since", {**parameters,
                                                                     "since": since}
        with sdk_errors(f"querying {table}/{partition}"):
            rows = client.query_entities(query, parameters=parameters, select=select)
            for row in rows:
                values = dict(row)
                stamp = row.metadata.get("timestamp")
                if stamp is not None:
                    values["Timestamp"] = stamp
                yield values
