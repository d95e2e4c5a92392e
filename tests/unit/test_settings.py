"""Settings read from a mapping, and written back for worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchfx.core.settings import Settings

_CONN = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"


def test_from_env_of_an_empty_mapping_gives_the_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.connection_string is None and settings.account_name is None
    assert settings.jobs_container == "batchfx"
    assert settings.queue_name == "batchfx-minibatches"
    assert settings.jobs_table == "batchfxjobs"
    assert settings.minibatches_table == "batchfxminibatches"
    assert (settings.poll_interval_s, settings.lease_margin_s) == (5.0, 60.0)
    assert (settings.storage_retry_total, settings.storage_retry_backoff_s,
            settings.storage_retry_backoff_max_s) == (5, 1.0, 30.0)
    assert settings.queue_window == 2000


def test_from_env_treats_empty_values_as_unset() -> None:
    env = {key: "" for key in Settings(connection_string="x").to_env()}
    env["AzureWebJobsStorage__accountName"] = ""
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize(
    ("key", "attribute", "value", "expected"),
    [
        ("AzureWebJobsStorage", "connection_string", _CONN, _CONN),
        ("AzureWebJobsStorage__accountName", "account_name", "prodacct", "prodacct"),
        ("BATCHFX_JOBS_CONTAINER", "jobs_container", "jobs2", "jobs2"),
        ("BATCHFX_QUEUE_NAME", "queue_name", "q2", "q2"),
        ("BATCHFX_JOBS_TABLE", "jobs_table", "jobs2", "jobs2"),
        ("BATCHFX_MINIBATCHES_TABLE", "minibatches_table", "mb2", "mb2"),
        ("BATCHFX_POLL_INTERVAL_S", "poll_interval_s", "0.5", 0.5),
        ("BATCHFX_LEASE_MARGIN_S", "lease_margin_s", "120", 120.0),
        ("BATCHFX_WORK_DIR", "work_dir", "/srv/batchfx", "/srv/batchfx"),
        ("BATCHFX_STORAGE_RETRY_TOTAL", "storage_retry_total", "8", 8),
        ("BATCHFX_STORAGE_RETRY_TOTAL", "storage_retry_total", "0", 0),
        ("BATCHFX_STORAGE_RETRY_BACKOFF_S", "storage_retry_backoff_s", "0.5", 0.5),
        ("BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S", "storage_retry_backoff_max_s", "90", 90.0),
        ("BATCHFX_MAX_MINI_BATCH_OUTPUT_MB", "max_output_mb", "64", 64.0),
        ("BATCHFX_QUEUE_WINDOW", "queue_window", "200", 200),
        ("BATCHFX_QUEUE_WINDOW", "queue_window", "1", 1),
    ],
)
def test_from_env_reads_each_override(key: str, attribute: str, value: str,
                                      expected: object) -> None:
    assert getattr(Settings.from_env({key: value}), attribute) == expected


def test_from_env_ignores_unrelated_variables() -> None:
    assert Settings.from_env({"PATH": "/bin", "BATCHFX_UNKNOWN": "x"}) == Settings()


@pytest.mark.parametrize("key", ["BATCHFX_POLL_INTERVAL_S", "BATCHFX_LEASE_MARGIN_S",
                                 "BATCHFX_STORAGE_RETRY_BACKOFF_S",
                                 "BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S",
                                 "BATCHFX_MAX_MINI_BATCH_OUTPUT_MB"])
@pytest.mark.parametrize(("raw", "expected"), [("soon", "a number"), ("0", "greater than 0"),
                                               ("-5", "greater than 0"),
                                               ("nan", "greater than 0"),
                                               ("inf", "greater than 0")])
def test_bad_number_gives_a_message_naming_the_setting_and_value(key: str, raw: str,
                                                                 expected: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env({key: raw})
    message = str(info.value)
    assert key in message
    assert repr(raw) in message
    assert expected in message


@pytest.mark.parametrize(("raw", "expected"), [("many", "a whole number of retries"),
                                               ("2.5", "a whole number of retries"),
                                               ("-1", "0 or more retries")])
def test_bad_retry_total_gives_a_message_naming_the_setting_and_value(raw: str,
                                                                      expected: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env({"BATCHFX_STORAGE_RETRY_TOTAL": raw})
    message = str(info.value)
    assert "BATCHFX_STORAGE_RETRY_TOTAL" in message
    assert repr(raw) in message
    assert expected in message


@pytest.mark.parametrize(("raw", "expected"), [("lots", "a whole number of mini-batches"),
                                               ("2.5", "a whole number of mini-batches"),
                                               ("0", "1 or more mini-batches"),
                                               ("-3", "1 or more mini-batches")])
def test_bad_queue_window_gives_a_message_naming_the_setting_and_value(raw: str,
                                                                       expected: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env({"BATCHFX_QUEUE_WINDOW": raw})
    message = str(info.value)
    assert message.startswith(f"setting BATCHFX_QUEUE_WINDOW: got {raw!r} — expected ")
    assert expected in message


def test_a_queue_window_that_is_not_a_number_says_how_to_get_the_default() -> None:
    with pytest.raises(ValueError, match=r"unset it for the default, 2000"):
        Settings.from_env({"BATCHFX_QUEUE_WINDOW": "big"})


def test_retry_backoff_max_below_the_first_backoff_is_refused_naming_both() -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env({"BATCHFX_STORAGE_RETRY_BACKOFF_S": "10",
                           "BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S": "5"})
    message = str(info.value)
    assert message.startswith("setting BATCHFX_STORAGE_RETRY_BACKOFF_MAX_S: got '5'")
    assert "at least BATCHFX_STORAGE_RETRY_BACKOFF_S (10 s)" in message


def test_retry_backoff_above_the_default_max_raises_the_max_with_it() -> None:
    settings = Settings.from_env({"BATCHFX_STORAGE_RETRY_BACKOFF_S": "45"})
    assert (settings.storage_retry_backoff_s, settings.storage_retry_backoff_max_s) == (45, 45)


def test_poison_queue_is_named_after_the_queue() -> None:
    assert Settings(queue_name="work").poison_queue_name == "work-poison"


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(connection_string=_CONN, jobs_container="c1", queue_name="q1", jobs_table="t1",
                 minibatches_table="t2", poll_interval_s=0.25, lease_margin_s=7.5,
                 work_dir="/tmp/x", storage_retry_total=0, storage_retry_backoff_s=0.05,
                 storage_retry_backoff_max_s=0.4, queue_window=50),
        Settings(account_name="prodacct"),
    ],
)
def test_to_env_round_trips_through_from_env(settings: Settings) -> None:
    assert Settings.from_env(settings.to_env()) == settings


def test_to_env_leaves_out_unset_connection_settings() -> None:
    env = Settings().to_env()
    assert "AzureWebJobsStorage" not in env
    assert "AzureWebJobsStorage__accountName" not in env


def test_to_env_values_are_all_strings() -> None:
    env = Settings(connection_string=_CONN).to_env()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


def test_a_relative_work_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"BATCHFX_WORK_DIR": "work"}).work_dir == str(tmp_path / "work")


def test_a_data_account_holds_every_container_but_the_apps_own() -> None:
    settings = Settings.from_env({"BATCHFX_DATA_ACCOUNT": "contosodata",
                                  "BATCHFX_JOBS_CONTAINER": "state"})
    assert settings.separate_data and settings.data_account == "contosodata"
    for own in ("state", "state-durable", "inbox", "azure-webjobs-hosts"):
        assert settings.is_app_container(own)
        assert settings.account_of(own) == "the app's storage account"
    for data in ("data", "outputs", "batchfx"):
        assert not settings.is_app_container(data)
        assert settings.account_of(data) == "the data storage account (contosodata)"
    assert Settings.from_env(settings.to_env()) == settings  # worker processes get it too
    assert not Settings().separate_data
    assert Settings().account_of("data") == "the app's storage account"


@pytest.mark.parametrize(("env", "said"), [
    ({"BATCHFX_DATA_ACCOUNT": "Contoso_Data"}, "expected a storage account name"),
    ({"BATCHFX_DATA_ACCOUNT": "contosodata", "BATCHFX_DATA_CONNECTION_STRING": _CONN},
     "are both set — set one"),
])
def test_a_bad_data_account_setting_is_refused_by_name(env: dict[str, str], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        Settings.from_env(env)
