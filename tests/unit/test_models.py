"""A job's models: how a spec names them and how they are laid out on disk (batchfx.core.models)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchfx.core.errors import SpecError
from batchfx.core.models import (
    JobModel,
    ModelReference,
    build_layout,
    layout_paths,
    parse_model_reference,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("clf:3", ModelReference("clf", 3)),
        ("clf@latest", ModelReference("clf", None)),
        ("azureml:clf:3", ModelReference("clf", 3)),
        ("azureml:clf@latest", ModelReference("clf", None)),
        ("azureml:digits-clf.v2_x:12", ModelReference("digits-clf.v2_x", 12)),
    ],
)
def test_registered_model_references(value: str, expected: ModelReference) -> None:
    assert parse_model_reference("model", value) == expected


def test_reference_text_pins_a_version_or_says_latest() -> None:
    assert str(ModelReference("clf", 3)) == "clf:3"
    assert str(ModelReference("clf", None)) == "clf@latest"


@pytest.mark.parametrize("value", ["container/prefix", "/abs/path", "mycontainer", "a/b/c.pkl"])
def test_paths_are_not_references(value: str) -> None:
    assert parse_model_reference("model", value) is None


def _problem(field: str, value: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_model_reference(field, value)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def test_prefixed_name_without_version_is_refused() -> None:
    problem = _problem("model", "azureml:clf")
    assert problem.startswith("model: got 'azureml:clf'")
    assert "name:version or name@latest" in problem


def test_only_the_latest_label_is_known() -> None:
    problem = _problem("models[1]", "clf@newest")
    assert problem.startswith("models[1]: got 'clf@newest'")
    assert "name@latest" in problem


def test_datastore_uris_are_refused() -> None:
    problem = _problem("model", "azureml://datastores/workspaceblobstore/paths/models/clf")
    assert "azureml:// URIs of datastores are not available" in problem


def test_version_zero_is_refused() -> None:
    assert "versions start at 1" in _problem("model", "clf:0")


@pytest.mark.parametrize(
    ("path", "name", "asset"),
    [
        ("models/digits-clf", "digits-clf", "digits-clf"),
        ("models/digits-clf/", "digits-clf", "digits-clf"),
        ("/abs/models/clf.pkl", "clf.pkl", "clf.pkl"),
        ("mycontainer", "mycontainer", "mycontainer"),
        ("models/my model", "model", "my model"),
        ("models/_private", "model", "_private"),
    ],
)
def test_a_folder_is_named_after_itself_version_one(path: str, name: str, asset: str) -> None:
    model = JobModel.for_path(path)
    assert (model.name, model.version, model.asset, model.path) == (name, 1, asset, path)
    assert model.registered is False


def test_record_round_trip() -> None:
    model = JobModel("clf", 4, "models/clf/v4", "clf", registered=True)
    record = model.to_record()
    assert record == {"name": "clf", "version": 4, "path": "models/clf/v4", "asset": "clf",
                      "registered": True}
    assert JobModel.from_record(record) == model


def test_record_without_registered_is_unregistered() -> None:
    model = JobModel.from_record({"name": "m", "version": "2", "path": "p/m", "asset": "m"})
    assert model == JobModel("m", 2, "p/m", "m", registered=False)


def test_layout_of_one_model() -> None:
    model = JobModel("clf", 2, "models/clf", "clf")
    model_dir, paths = layout_paths("/work/root", [model])
    assert model_dir == os.path.join("/work/root", "azureml-models", "clf", "2")
    assert paths == {("clf", 2): os.path.join(model_dir, "clf")}


def test_layout_of_several_models() -> None:
    models = [JobModel("clf", 2, "m/clf", "clf"), JobModel("labels", 1, "m/l.json", "l.json")]
    model_dir, paths = layout_paths("/work/root", models)
    base = os.path.join("/work/root", "azureml-models")
    assert model_dir == base
    assert paths == {("clf", 2): os.path.join(base, "clf", "2", "clf"),
                     ("labels", 1): os.path.join(base, "labels", "1", "l.json")}


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "src" / "clf"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "MLmodel").write_text("flavors: {}\n")
    (source / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    (source / "sub" / "deeper" / "vocab.txt").write_text("a\nb\n")
    return source


def test_build_layout_makes_real_folders_of_hard_links(tmp_path: Path) -> None:
    source = _source(tmp_path)
    model = JobModel("clf", 3, "models/clf", "clf")
    root = tmp_path / "cache" / "models" / "abc"
    model_dir = build_layout(str(root), [(model, str(source))])
    assert model_dir == str(root / "azureml-models" / "clf" / "3")
    laid = Path(model_dir) / "clf"
    walked = sorted(os.path.relpath(os.path.join(d, f), laid)
                    for d, _, files in os.walk(laid) for f in files)
    expected = sorted(["MLmodel", os.path.join("sub", "weights.bin"),
                       os.path.join("sub", "deeper", "vocab.txt")])
    assert walked == expected
    assert sorted(str(p.relative_to(laid)) for p in laid.rglob("*") if p.is_file()) == expected
    assert not (laid / "sub").is_symlink()
    for name in expected:  # the files are the source's own (links), not copies
        assert os.stat(laid / name).st_ino == os.stat(source / name).st_ino
    assert (laid / "sub" / "deeper" / "vocab.txt").read_text() == "a\nb\n"


def test_build_layout_of_a_file_model_and_several_models(tmp_path: Path) -> None:
    source = _source(tmp_path)
    single = tmp_path / "src" / "labels.json"
    single.write_text('{"0": "cat"}')
    staged = [(JobModel("clf", 1, "m/clf", "clf"), str(source)),
              (JobModel("labels", 2, "m/labels.json", "labels.json"), str(single))]
    root = tmp_path / "cache" / "both"
    model_dir = build_layout(str(root), staged)
    assert model_dir == str(root / "azureml-models")
    laid_file = Path(model_dir) / "labels" / "2" / "labels.json"
    assert laid_file.is_file()
    assert laid_file.read_text() == '{"0": "cat"}'
    assert os.stat(laid_file).st_ino == os.stat(single).st_ino
    assert (Path(model_dir) / "clf" / "1" / "clf" / "MLmodel").is_file()


def test_build_layout_is_done_once(tmp_path: Path) -> None:
    source = _source(tmp_path)
    model = JobModel("clf", 1, "m/clf", "clf")
    root = tmp_path / "cache" / "once"
    first = build_layout(str(root), [(model, str(source))])
    (source / "added-later.txt").write_text("late")
    second = build_layout(str(root), [(model, str(source))])
    assert second == first
    assert not (Path(first) / "clf" / "added-later.txt").exists()
    assert (Path(first) / "clf" / "MLmodel").is_file()


def test_build_layout_leaves_no_building_folders(tmp_path: Path) -> None:
    source = _source(tmp_path)
    parent = tmp_path / "cache"
    build_layout(str(parent / "one"), [(JobModel("clf", 1, "m/clf", "clf"), str(source))])
    build_layout(str(parent / "one"), [(JobModel("clf", 1, "m/clf", "clf"), str(source))])
    assert sorted(os.listdir(parent)) == ["one"]


def test_build_layout_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    parent = tmp_path / "cache"
    model = JobModel("clf", 1, "m/clf", "clf")
    with pytest.raises(FileNotFoundError):
        build_layout(str(parent / "x"), [(model, str(tmp_path / "missing"))])
    assert os.listdir(parent) == []


def test_build_layout_leaves_the_source_files_untouched(tmp_path: Path) -> None:
    """A local model folder is pinned at submit by its files' sizes and times: laying it
    out (for another job, or another worker process) must not change them (a hard link
    would change each file's ctime, and every later worker would see a changed model), so
    its files are copied; the app's own cache is linked."""
    source = _source(tmp_path)
    before = {p: (os.stat(p).st_ctime_ns, os.stat(p).st_mtime_ns)
              for p in source.rglob("*") if p.is_file()}
    local = JobModel.for_path(str(source))  # a folder of the user's, read in place
    model_dir = build_layout(str(tmp_path / "cache" / "once"), [(local, str(source))])
    after = {p: (os.stat(p).st_ctime_ns, os.stat(p).st_mtime_ns)
             for p in source.rglob("*") if p.is_file()}
    assert after == before
    copied = Path(model_dir) / source.name / "MLmodel"
    assert copied.read_text() == (source / "MLmodel").read_text()
    assert os.stat(copied).st_ino != os.stat(source / "MLmodel").st_ino  # a copy
