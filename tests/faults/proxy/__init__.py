"""A fault-injecting HTTP/1.1 reverse proxy in front of Azurite's blob, queue and table ports.

The app under test connects through :attr:`FaultProxy.connection_string` (same account
and key, the proxy's ports). Requests are forwarded byte for byte; on a seeded random
schedule, at a rate set per service (and optionally per method/path), a request is
instead answered the way a struggling storage account answers it:

- ``error_500`` / ``error_503``: ``500 InternalError`` / ``503 ServerBusy`` with Azure's
  error body (XML for blob/queue, JSON for table); the request never reaches Azurite.
- ``drop``: the connection is closed before the request is forwarded (not applied).
- ``timeout``: the request *is* forwarded and applied, then the reply is withheld for
  ``stall_s`` and the connection closed: what a client sees when its read times out
  (``ServiceResponseError``), including the ambiguity of a write that did happen.
- ``delay``: the request is held ``stall_s`` before it is forwarded (a latency spike).

A rule may stop after ``limit`` faults (one 503, then normal service).

Counters: requests per (service, method), faults per (service, kind).

``server`` holds the proxy and its rules, ``wire`` the HTTP/1.1 reading and writing;
``from tests.faults.proxy import FaultProxy, FaultRule`` (or ``from proxy import ...``
with tests/faults on ``sys.path``) gives the public names.
"""

from .server import KINDS, SERVICES, FaultProxy, FaultRule

__all__ = ["KINDS", "SERVICES", "FaultProxy", "FaultRule"]
