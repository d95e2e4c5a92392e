"""The fault proxy itself: byte-exact forwarding, and each fault kind as the SDK sees it."""

from __future__ import annotations

import os

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.storage.blob import BlobServiceClient
from proxy import FaultProxy


def _blobs(proxy: FaultProxy, **kwargs: object) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(proxy.connection_string, **kwargs)


def test_proxy_forwards_requests_byte_exact(fault_proxy: FaultProxy, unique_name: str) -> None:
    container = _blobs(fault_proxy).get_container_client(unique_name)
    container.create_container()
    data = os.urandom(3 * 1024 * 1024 + 17)
    container.upload_blob("big.bin", data)
    assert container.download_blob("big.bin").readall() == data
    assert fault_proxy.requests[("blob", "PUT")] >= 2
    assert sum(fault_proxy.faults.values()) == 0


def test_proxy_answers_503_with_azures_error_body(fault_proxy: FaultProxy,
                                                  unique_name: str) -> None:
    container = _blobs(fault_proxy, retry_total=0).get_container_client(unique_name)
    container.create_container()
    fault_proxy.set_rates("blob", error_503=1.0)
    with pytest.raises(HttpResponseError) as caught:
        container.upload_blob("x.txt", b"x")
    assert caught.value.status_code == 503
    assert caught.value.error_code == "ServerBusy"
    assert fault_proxy.faults[("blob", "error_503")] == 1


@pytest.mark.parametrize("kind", ["drop", "timeout"])
def test_proxy_drops_or_withholds_the_reply(fault_proxy: FaultProxy, unique_name: str,
                                            kind: str) -> None:
    container = _blobs(fault_proxy, retry_total=0).get_container_client(unique_name)
    container.create_container()
    fault_proxy.stall_s = 0.2
    fault_proxy.set_rates("blob", methods=["PUT"], **{kind: 1.0})
    with pytest.raises(ServiceResponseError):
        container.upload_blob("x.txt", b"x")
    fault_proxy.clear()
    # A withheld reply still reached Azurite: the write happened; a drop never did.
    assert container.get_blob_client("x.txt").exists() is (kind == "timeout")
    assert fault_proxy.faults_by_kind() == {kind: 1}


def test_proxy_rule_with_a_limit_stops_after_that_many_faults(fault_proxy: FaultProxy,
                                                              unique_name: str) -> None:
    container = _blobs(fault_proxy, retry_total=0).get_container_client(unique_name)
    container.create_container()
    fault_proxy.set_rates("blob", error_503=1.0, limit=2)
    for _ in range(2):
        with pytest.raises(HttpResponseError):
            container.upload_blob("x.txt", b"x", overwrite=True)
    container.upload_blob("x.txt", b"x", overwrite=True)
    assert fault_proxy.faults_by_kind() == {"error_503": 2}
