"""Malformed requests and specs: each gets a clear 4xx naming the problem, nothing written.

Table-driven: every case posts to the real HTTP function and checks the status, that the
message names what was wrong, and that no job (and no job row) was recorded.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from e2e_app import App

Case = tuple[str, Any, int, str]  # id, body (dict → JSON, bytes → raw), status, text in reply


def _cases(code: str, inputs: str, out: str) -> list[Case]:
    base = {"name": "bad-input", "entry_script": "score.py", "source_directory": code,
            "inputs": inputs, "output": out}

    def spec(**changes: Any) -> dict[str, Any]:
        body = {**base, **changes}
        return {k: v for k, v in body.items() if v is not None}

    return [
        ("not json", b"{nope", 400, "not valid JSON"),
        ("json array", b"[1, 2]", 400, "mapping"),
        ("json string", b'"job"', 400, "mapping"),
        ("json null", b"null", 400, "mapping"),
        ("empty body", b"", 400, "not valid JSON"),
        ("not utf-8", b"\xff\xfe{", 400, "not valid JSON"),
        ("oversized", b" " * (1024 * 1024 + 1), 413, "at most"),
        ("unknown key", spec(colour="red"), 400, "colour: unknown field"),
        ("typo key", spec(mini_batchsize=5), 400, "did you mean 'mini_batch_size'"),
        ("missing name", spec(name=None), 400, "name: missing"),
        ("missing entry_script", spec(entry_script=None), 400, "entry_script: missing"),
        ("missing inputs", spec(inputs=None), 400, "inputs: missing"),
        ("missing output", spec(output=None), 400, "output: missing"),
        ("name upper case", spec(name="BadName"), 400, "name: got 'BadName'"),
        ("name too short", spec(name="ab"), 400, "name: got 'ab'"),
        ("name too long", spec(name="a" * 33), 400, "name:"),
        ("name trailing dash", spec(name="job-"), 400, "name: got 'job-'"),
        ("name traversal", spec(name="../etc"), 400, "name:"),
        ("name wrong type", spec(name=5), 400, "name: got 5"),
        ("entry_script absolute", spec(entry_script="/etc/passwd.py"), 400, "entry_script"),
        ("entry_script traversal", spec(entry_script="../score.py"), 400, "entry_script"),
        ("entry_script not .py", spec(entry_script="score.sh"), 400, "entry_script"),
        ("entry_script missing", spec(entry_script="nope.py"), 400, "'nope.py' not found"),
        ("inputs traversal", spec(inputs=f"{inputs}/../other"), 400, "inputs.path"),
        ("inputs url", spec(inputs="https://evil.example/data"), 400, "URLs are not accepted"),
        ("inputs backslash", spec(inputs="data\\x"), 400, "inputs.path"),
        ("inputs bad container", spec(inputs="Bad_Container/x"), 400, "inputs.path"),
        ("inputs no container", spec(inputs="nosuchcontainer1/x"), 400, "does not exist"),
        ("zero inputs", spec(inputs=f"{inputs}/empty-prefix"), 400, "zero inputs"),
        ("inputs wrong type", spec(inputs=5), 400, "inputs"),
        ("inputs unknown key", spec(inputs={"path": inputs, "size": 3}), 400, "inputs.size"),
        ("source traversal", spec(source_directory=f"{code}/../x"), 400, "source_directory"),
        ("source url", spec(source_directory="http://x/y"), 400, "URLs are not accepted"),
        ("model missing", spec(model=f"{code}/no-model"), 400, "model"),
        ("output traversal", spec(output=f"{out}/../../x"), 400, "output"),
        ("output url", spec(output="https://x/y"), 400, "URLs are not accepted"),
        ("output in app container", spec(output=f"{code.split('/')[0]}/x"), 400,
         "holds the app's job state"),
        ("inputs from app state", spec(inputs=f"{code.split('/')[0]}/jobs"), 400,
         "holds the app's job state"),
        ("inputs at the app container's root", spec(inputs={
            "path": code.split("/")[0], "glob": "jobs/*"}), 400, "the whole container"),
        ("model from the host's keys", spec(model="azure-webjobs-secrets"), 400,
         "function keys"),
        ("mini_batch_size zero", spec(mini_batch_size=0), 400, "mini_batch_size"),
        ("mini_batch_size text", spec(mini_batch_size="ten"), 400, "mini_batch_size: got 'ten'"),
        ("mini_batch_size bool", spec(mini_batch_size=True), 400, "mini_batch_size"),
        ("error_threshold -2", spec(error_threshold=-2), 400, "error_threshold"),
        ("error_threshold text", spec(error_threshold="5"), 400, "error_threshold"),
        ("percent above 100", spec(allowed_failed_percent=101), 400, "allowed_failed_percent"),
        ("run_max_try zero", spec(run_max_try=0), 400, "run_max_try"),
        ("timeout negative", spec(run_invocation_timeout=-1), 400, "run_invocation_timeout"),
        ("output_action unknown", spec(output_action="append"), 400, "output_action"),
        ("output_format unknown", spec(output_format="xlsx"), 400, "output_format"),
        ("file name with slash", spec(append_row_file_name="a/b.txt"), 400,
         "append_row_file_name"),
        ("file name traversal", spec(append_row_file_name=".."), 400, "append_row_file_name"),
        ("file name of a report", spec(append_row_file_name="errors.csv"), 400,
         "that is the name of a report"),
        ("arguments not list", spec(arguments={"a": 1}), 400, "arguments"),
        ("env not mapping", spec(environment_variables=["A=1"]), 400, "environment_variables"),
        ("logging level", spec(logging_level="LOUD"), 400, "logging_level"),
        ("retry both forms differ", spec(run_max_try=2, retry_settings={"max_retries": 5}), 400,
         "run_max_try"),
        ("several problems", spec(name="X", run_max_try=0, colour=1), 400, "colour"),
        # a JSON "\udcff" escape: a blob name no storage request can carry
        ("inputs not utf-8", spec(inputs=f"{inputs}/x\udcff"), 400,
         "inputs: got"),
        ("inputs path not utf-8", spec(inputs={"path": f"{inputs}/\ud800"}), 400,
         "inputs.path: got"),
        ("env value not utf-8", spec(environment_variables={"K": "a\udcff"}), 400,
         "environment_variables.K: got"),
        ("key not utf-8", spec(**{"na\udcffme": "x"}), 400, "not valid UTF-8 text"),
    ]


def _post(url: str, key: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api/jobs", data=data, method="POST")
    request.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_each_malformed_request_is_refused_clearly_and_writes_nothing(app: App) -> None:
    assert app.runner is not None and app.api is not None
    code = app.upload_script("echo.py")
    inputs = app.upload_inputs({"a.txt": "1"})
    out = f"{app.settings.jobs_container}/out"
    cases = _cases(code, inputs, out)
    assert len(cases) >= 40
    failures = []
    for case_id, body, status, text in cases:
        got_status, reply = _post(app.runner.url, app.runner.function_key, body)
        message = json.dumps(reply)
        if got_status != status or text not in message:
            failures.append(f"{case_id}: got {got_status} {message[:300]}")
    assert failures == []
    assert app.api.list() == []  # nothing recorded by any of them
    jobs_rows = list(app.storage.tables.query(app.settings.jobs_table, "job"))
    assert jobs_rows == []


@pytest.mark.parametrize(
    ("script", "text"),
    [
        ("syntax_error.py", "SyntaxError"),
        ("no_run.py", "no run() function"),
        ("returns_generator.py", "run() returned generator"),
        ("returns_none.py", "run() returned NoneType"),
        ("system_exit.py", "sys.exit(42)"),
    ],
)
def test_broken_scripts_end_as_job_errors_naming_the_problem(app: App, script: str,
                                                            text: str) -> None:
    view = app.wait(app.submit(app.spec(script, {"a.txt": "1", "b.txt": "2"}, run_max_try=1)))
    assert view["state"] in ("failed", "completed")
    explained = (view.get("error") or "") + app.outputs(view).get("errors.txt", "")
    assert text in explained


def test_more_rows_than_inputs_are_all_written_and_counted_once(app: App) -> None:
    view = app.wait(app.submit(app.spec("returns_more.py", {"a.txt": "1", "b.txt": "2"})))
    assert view["state"] == "completed"
    assert view["items"] == {"total": 2, "succeeded": 2, "failed": 0, "pending": 0}
    assert view["rows"] == 4


def test_a_huge_row_fails_its_item_clearly_and_the_others_are_written(app: App) -> None:
    app.stop()
    app.settings = dataclasses.replace(app.settings, max_output_mb=1.0)
    app.start()
    files = {"a.txt": "1", "huge.txt": "2", "z.txt": "3"}
    view = app.wait(app.submit(app.spec("returns_huge.py", files, mini_batch_size=3,
                                        run_max_try=3)))
    assert view["state"] == "completed", view
    assert view["items"] == {"total": 3, "succeeded": 2, "failed": 1, "pending": 0}
    out = app.outputs(view)
    assert out["parallel_run_step.txt"] == "a.txt ok\nz.txt ok\n"
    errors = list(csv.DictReader(io.StringIO(out["errors.csv"])))
    assert [(e["item"].rsplit("/", 1)[-1], e["error_type"]) for e in errors] == [
        ("huge.txt", "OutputTooLarge")]
    assert "run() returned 3.0 MiB of output for 1 rows, over the limit of 1 MiB" in (
        errors[0]["error"])
    # Not retried (more tries would return as much): one try, then isolated at once.
    report = list(csv.DictReader(io.StringIO(out["processed_mini-batches.csv"])))
    assert [r["tries"] for r in report] == ["1"]
