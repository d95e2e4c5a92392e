"""The Azurite launcher against the real emulator."""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from batchfx.core.errors import AzuriteError
from batchfx.local.azurite import Azurite, find_azurite


def _fake_azurite(folder: Path) -> Path:
    binary = folder / "node_modules" / ".bin" / "azurite"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


@pytest.mark.azurite
def test_blob_round_trip(connection_string: str, unique_name: str) -> None:
    service = BlobServiceClient.from_connection_string(connection_string)
    container = service.create_container(unique_name)
    container.upload_blob("inputs/a.txt", b"hello azurite")
    assert container.download_blob("inputs/a.txt").readall() == b"hello azurite"
    assert [b.name for b in container.list_blobs()] == ["inputs/a.txt"]


@pytest.mark.azurite
def test_queue_send_receive(connection_string: str, unique_name: str) -> None:
    queue = QueueClient.from_connection_string(connection_string, unique_name)
    queue.create_queue()
    queue.send_message('{"mini_batch": 3}')
    received = list(queue.receive_messages(messages_per_page=10, visibility_timeout=30))
    assert [m.content for m in received] == ['{"mini_batch": 3}']


@pytest.mark.azurite
def test_table_upsert_get(connection_string: str, unique_name: str) -> None:
    service = TableServiceClient.from_connection_string(connection_string)
    table = service.create_table(unique_name)
    table.upsert_entity({"PartitionKey": "job1", "RowKey": "000001", "state": "running"})
    table.upsert_entity({"PartitionKey": "job1", "RowKey": "000001", "state": "succeeded"})
    entity = table.get_entity("job1", "000001")
    assert entity["state"] == "succeeded"
    assert len(list(table.query_entities("PartitionKey eq 'job1'"))) == 1


@pytest.mark.azurite
def test_on_disk_data_survives_restart(tmp_path: Path, unique_name: str) -> None:
    with Azurite(location=str(tmp_path / "data")) as emulator:
        ports = (emulator.blob_port, emulator.queue_port, emulator.table_port)
        first_pid = emulator.pid
        service = BlobServiceClient.from_connection_string(emulator.connection_string)
        service.create_container(unique_name).upload_blob("kept.txt", b"still here")

        emulator.restart()

        assert emulator.pid != first_pid
        assert (emulator.blob_port, emulator.queue_port, emulator.table_port) == ports
        service = BlobServiceClient.from_connection_string(emulator.connection_string)
        blob = service.get_blob_client(unique_name, "kept.txt")
        assert blob.download_blob().readall() == b"still here"


@pytest.mark.azurite
def test_restart_retries_while_a_port_is_busy() -> None:
    with Azurite() as emulator:
        port = emulator.queue_port
        emulator.stop()
        squatter = socket.create_server(("127.0.0.1", port))
        release = threading.Timer(1.5, squatter.close)
        release.start()
        try:
            emulator.start()
        finally:
            release.join()
        assert emulator.running
        assert emulator.queue_port == port


@pytest.mark.azurite
def test_in_memory_data_is_gone_after_restart(unique_name: str) -> None:
    with Azurite() as emulator:
        service = BlobServiceClient.from_connection_string(emulator.connection_string)
        service.create_container(unique_name)
        emulator.restart()
        service = BlobServiceClient.from_connection_string(emulator.connection_string)
        assert not service.get_container_client(unique_name).exists()


@pytest.mark.azurite
def test_two_instances_get_different_ports(azurite: Azurite) -> None:
    with Azurite() as other:
        ours = {azurite.blob_port, azurite.queue_port, azurite.table_port}
        theirs = {other.blob_port, other.queue_port, other.table_port}
        assert len(ours) == 3
        assert len(theirs) == 3
        assert ours.isdisjoint(theirs)
        assert other.pid != azurite.pid


@pytest.mark.azurite
def test_stop_is_idempotent_and_kills_the_process() -> None:
    emulator = Azurite().start()
    pid = emulator.pid
    assert pid is not None
    emulator.stop()
    emulator.stop()
    assert emulator.pid is None
    assert not emulator.running
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # signal 0: only checks the group exists


@pytest.mark.azurite
def test_connection_string_has_all_endpoints(azurite: Azurite) -> None:
    parts = dict(p.split("=", 1) for p in azurite.connection_string.rstrip(";").split(";"))
    assert parts["AccountName"] == "devstoreaccount1"
    assert parts["BlobEndpoint"] == f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1"
    assert parts["QueueEndpoint"] == f"http://127.0.0.1:{azurite.queue_port}/devstoreaccount1"
    assert parts["TableEndpoint"] == f"http://127.0.0.1:{azurite.table_port}/devstoreaccount1"


def test_start_failure_reports_the_output_tail() -> None:
    crash = [sys.executable, "-c", "import sys; sys.stderr.write('boom: bad flag'); sys.exit(3)"]
    emulator = Azurite(command=crash, startup_timeout=10)
    with pytest.raises(AzuriteError, match="exited with code 3") as info:
        emulator.start()
    assert "boom: bad flag" in str(info.value)
    assert not emulator.running


def test_start_times_out_when_ports_never_listen() -> None:
    idle = [sys.executable, "-c", "import time; time.sleep(60)"]
    emulator = Azurite(command=idle, startup_timeout=0.5)
    with pytest.raises(AzuriteError, match=r"not listening after 0\.5s"):
        emulator.start()
    assert emulator.pid is None


def test_ports_before_start_are_an_error() -> None:
    with pytest.raises(AzuriteError, match=r"call start\(\) first"):
        _ = Azurite().connection_string


def test_find_azurite_reports_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(AzuriteError, match=r"run `npm ci` in the project root \(needs Node 20\)"):
        find_azurite(roots=[tmp_path], path_env="")


def test_find_azurite_walks_up_from_each_root(tmp_path: Path) -> None:
    binary = _fake_azurite(tmp_path / "repo")
    nested = tmp_path / "repo" / "batchfx" / "local"
    nested.mkdir(parents=True)
    assert find_azurite(roots=[tmp_path / "elsewhere", nested], path_env="") == [str(binary)]


def test_find_azurite_falls_back_to_path(tmp_path: Path) -> None:
    binary = _fake_azurite(tmp_path)
    found = find_azurite(roots=[tmp_path.parent / "nothing-here"], path_env=str(binary.parent))
    assert found == [str(binary)]


@pytest.mark.azurite
def test_find_azurite_default_roots_include_the_package_dir(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # away from the repo: only the package dir can lead to it
    command = find_azurite(path_env="")
    assert Path(command[0]).name == "azurite"
    assert os.access(command[0], os.X_OK)
