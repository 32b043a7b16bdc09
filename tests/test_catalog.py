"""Readers read the dataset, not a glob (issue 16, items 7-8): every reader takes its shard
list from synth.catalog, ignores foreign files with a warning, refuses an incomplete run
unless asked, and names the file in every error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from annotate.__main__ import main as annotate_main
from annotate.dataset import iter_rows
from annotate.verify import verify
from synth.catalog import CatalogError, IncompleteRun, open_catalog, read_table
from synth.runner import generate_dataset
from tests.conftest import write_recipe
from train.data import ShardSet

SHARDS = ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A complete 2-shard run of 2 geometry rows each."""
    root = tmp_path_factory.mktemp("catalog")
    recipe = write_recipe(root / "r.yaml", name="c", shards=2, rows_per_shard=2, mixture={"geometry": {"weight": 1}})
    generate_dataset(recipe, str(root / "run"), executor="local")
    return root / "run"


@pytest.fixture
def run(small_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run to damage."""
    return Path(shutil.copytree(small_run, tmp_path / "run"))


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _set_manifest(run: Path, m) -> None:
    (run / "manifest.json").write_text(json.dumps(m))


def test_a_datasets_cache_file_is_ignored_by_every_reader(run: Path, capsys, caplog):
    # Issue 16.7: .map() on load_from_disk(dir) wrote cache-<hash>.arrow into the folder; then
    # Ray Data counted twice the rows, `annotate stats` failed with 'family' and the trainer
    # with 'records'.
    datasets = pytest.importorskip("datasets")
    datasets.load_from_disk(str(run)).map(lambda r: {"n": 1})
    cache = [p.name for p in run.glob("cache-*.arrow")]
    assert cache, "datasets wrote no cache file: the test does not test anything"
    caplog.set_level("WARNING", logger="synth.catalog")
    assert len([r for _, _, r in iter_rows(str(run), columns=["id"])]) == 4
    assert f"ignoring 1 file(s) that are not shards of this dataset: {cache[0]}" in caplog.text
    assert annotate_main(["stats", str(run)]) == 0
    assert "2 shards, 4 rows" in capsys.readouterr().out
    assert [Path(p).name for p in ShardSet([str(run)]).paths] == SHARDS
    assert verify(str(run)).ok


def test_an_incomplete_run_is_refused_unless_asked(run: Path, capsys):
    m = _manifest(run)
    del m["shards"][SHARDS[1]]
    m["complete"] = False
    _set_manifest(run, m)
    (run / SHARDS[1]).unlink()
    with pytest.raises(IncompleteRun, match=r"incomplete run \(1 of 2 shards complete\).*--allow-incomplete"):
        list(iter_rows(str(run)))
    assert len(list(iter_rows(str(run), allow_incomplete=True))) == 2
    assert annotate_main(["stats", str(run)]) != 0
    assert "--allow-incomplete" in capsys.readouterr().err
    assert annotate_main(["stats", str(run), "--allow-incomplete"]) == 0
    with pytest.raises(IncompleteRun):
        ShardSet([str(run)])
    assert len(ShardSet([str(run)], allow_incomplete=True).paths) == 1
    with pytest.raises(IncompleteRun):
        verify(str(run))
    assert verify(str(run), allow_incomplete=True).ok


def test_unlisted_and_foreign_shards_are_not_read(run: Path):
    # A shard file the manifest does not list (an orphan's, another run's) is never read;
    # verify reports it.
    shutil.copy(run / SHARDS[0], run / "data-00005-of-00016.arrow")
    assert [r.name for r in open_catalog(str(run)).shards] == SHARDS
    report = verify(str(run))
    assert [p.where for p in report.problems] == ["data-00005-of-00016.arrow"]


def test_a_truncated_shard_is_named(run: Path, capsys):
    # Issue 16.8: stats, show and sheet printed an Arrow traceback that did not name the file.
    shard = run / SHARDS[1]
    shard.write_bytes(shard.read_bytes()[:300])
    for argv in (["stats", str(run)], ["show", str(run), "3"], ["sheet", str(run), "--out", str(run / "s.png")]):
        assert annotate_main(argv) != 0
        err = capsys.readouterr().err
        assert str(shard) in err and "truncated" in err and "Traceback" not in err, err
    (run / "manifest.json").unlink()  # without a manifest the size cannot tell: reading does
    with pytest.raises(CatalogError, match=rf"{shard}: not a readable Arrow IPC stream .*truncated or corrupt"):
        list(iter_rows(str(run)))


@pytest.mark.parametrize("damage, message", [
    (lambda m: [], r"manifest.json: expected a JSON object with 'shards'.*got a JSON list"),
    (lambda m: {**m, "shards": {k: {kk: vv for kk, vv in v.items() if kk != "sha256"} for k, v in m["shards"].items()}},
     r"manifest.json: shard entry 'data-00000-of-00002.arrow' has no 'sha256'"),
])
def test_a_broken_manifest_is_named(run: Path, capsys, damage, message):
    # Issue 16.8: manifest.json holding [] crashed verify and stats; an entry without sha256
    # printed "error: 'sha256'".
    _set_manifest(run, damage(_manifest(run)))
    for argv in (["stats", str(run)], ["verify", str(run)]):
        assert annotate_main(argv) != 0
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert pytest.importorskip("re").search(message, err), err


def test_a_schema_error_names_the_column(run: Path, tmp_path: Path):
    # Issue 16.8: verify printed the whole schema without naming the extra column.
    table = read_table(open_catalog(str(run)).shards[0])
    odd = table.append_column("foo", pa.array(["x"] * table.num_rows)).drop_columns(["lang"])
    path = tmp_path / "odd.arrow"
    with ipc.new_stream(str(path), odd.schema) as w:
        w.write_table(odd)
    [problem] = verify(str(path)).problems
    assert "extra column 'foo' (string)" in problem.message and "missing column 'lang' (string)" in problem.message
    assert len(problem.message) < 200
    # the trainer names the file and the column it needs (it raised KeyError: 'Field "records" ...')
    bare = tmp_path / "bare.arrow"
    with ipc.new_stream(str(bare), table.drop_columns(["records"]).schema) as w:
        w.write_table(table.drop_columns(["records"]))
    with pytest.raises(CatalogError, match=rf"{bare}: not a shard of this engine: no column 'records'"):
        ShardSet([str(bare)]).table(0)


def test_a_folder_without_manifest_reads_data_files_in_order(run: Path):
    (run / "manifest.json").unlink()
    (run / "notes.arrow").write_bytes(b"not a shard")
    cat = open_catalog(str(run))
    assert [r.name for r in cat.shards] == SHARDS and cat.foreign == ["notes.arrow"] and cat.complete
    (run / SHARDS[0]).unlink()
    with pytest.raises(IncompleteRun, match=r"1 of 2 shards"):
        open_catalog(str(run))
