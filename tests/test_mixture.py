"""Every family through the whole pipeline: recipe -> shards -> verify/show/sheet, and
verify catching a wrong SMILES, a chart table that disagrees with its data, and a
geometry target that does not match its figure."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from PIL import Image

from synth.runner import generate_dataset
from synth.shards import encode_table, sha256_hex
from tests.conftest import run_cli, write_recipe

FAMILIES = ("ocr1", "chart", "molecule", "geometry", "vision", "text")


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mix")
    weights = {"ocr1": 0.45, "chart": 0.10, "molecule": 0.075, "geometry": 0.075, "vision": 0.20, "text": 0.10}
    recipe = write_recipe(root / "mix.yaml", name="mix", seed=3, shards=2, rows_per_shard=20,
                          mixture={f: {"weight": w} for f, w in weights.items()})
    out = root / "out"
    generate_dataset(recipe, str(out), executor="local")
    return out


def test_every_family_present_and_counts_follow_weights(mixture: Path):
    manifest = json.loads((mixture / "manifest.json").read_text())
    fams = manifest["totals"]["families"]
    assert set(fams) == set(FAMILIES)
    weights = {e: w["weight"] for e, w in manifest["recipe"]["mixture"].items()}
    for fam, w in weights.items():
        assert abs(fams[fam] - 40 * w) <= 2, (fam, fams[fam], 40 * w)
    tasks = manifest["totals"]["tasks"]
    assert tasks["ocr1.free_ocr"] == tasks["ocr1.grounded_markdown"] == fams["ocr1"]
    assert tasks["molecule.smiles"] == fams["molecule"] and tasks["text.lm"] == fams["text"]


def test_verify_show_and_sheet_handle_every_family(mixture: Path, tmp_path: Path):
    res = run_cli("-m", "annotate", "verify", str(mixture))
    assert res.returncode == 0, res.stdout
    from annotate.dataset import iter_rows

    first = {}
    for _, _, row in iter_rows(str(mixture), columns=["id", "family"]):
        first.setdefault(row["family"], row["id"])
    for fam, rid in first.items():
        png = tmp_path / f"{fam}.png"
        shown = run_cli("-m", "annotate", "show", str(mixture), rid, "--out", str(png))
        assert shown.returncode == 0, shown.stderr
        assert f"family: {fam}" in shown.stdout
        assert Image.open(png).width > 100
        sheet = tmp_path / f"sheet-{fam}.png"
        made = run_cli("-m", "annotate", "sheet", str(mixture), "--family", fam, "--n", "2", "--out", str(sheet))
        assert made.returncode == 0, made.stderr
    # the molecule's picture has its target re-drawn beside it: wider than the stored image
    from annotate.dataset import find_row
    from synth import families

    mol = find_row(str(mixture), first["molecule"])
    assert families.annotator_module("molecule").overlay(mol).width > mol["width"]


def _tamper(src: Path, dst: Path, family: str, edit) -> str:
    """Copy the dataset, change the first row of ``family`` with ``edit``, re-seal the manifest."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for name in sorted(manifest["shards"]):
        path = dst / name
        with pa.memory_map(str(path)) as f:
            rows = ipc.open_stream(f).read_all().to_pylist()
        hit = next((r for r in rows if r["family"] == family), None)
        if hit is None:
            continue
        new_target = edit(hit["target"])
        assert new_target != hit["target"]
        hit["target"] = new_target
        hit["records"][0]["target"] = new_target
        data = encode_table(rows)
        path.write_bytes(data)
        manifest["shards"][name].update(bytes=len(data), sha256=sha256_hex(data))
        (dst / "manifest.json").write_text(json.dumps(manifest))
        return hit["id"]
    raise AssertionError(f"no {family} row")


def _wrong_smiles(target: str) -> str:
    return "CCO" if target != "CCO" else "CCN"


def _wrong_cell(target: str) -> str:
    # change one digit of the first value cell of the first category row ("$3.49" -> "$6.49")
    header, sep, rest = target.partition("</tr>")
    cells = rest.split("<td>")
    value = cells[2]
    i = next(k for k, ch in enumerate(value) if ch.isdigit())
    cells[2] = value[:i] + str((int(value[i]) + 3) % 10) + value[i + 1:]
    return header + sep + "<td>".join(cells)


def _moved_line(target: str) -> str:
    fig = ast.literal_eval(target)
    first = fig["Line"]["line"][0]
    x = re.match(r"\((-?[\d.]+),", first).group(1)
    fig["Line"]["line"][0] = first.replace(f"({x},", f"({float(x) + 2.5:.2f},", 1)
    return str(fig)


@pytest.mark.parametrize("family, edit", [("molecule", _wrong_smiles), ("chart", _wrong_cell), ("geometry", _moved_line)])
def test_verify_catches_a_wrong_target(mixture: Path, tmp_path: Path, family, edit):
    bad_id = _tamper(mixture, tmp_path / "ds", family, edit)
    res = run_cli("-m", "annotate", "verify", str(tmp_path / "ds"))
    assert res.returncode == 1, res.stdout
    bad = [ln for ln in res.stdout.splitlines() if ln.startswith("BAD")]
    assert bad and all(bad_id in ln for ln in bad), res.stdout
