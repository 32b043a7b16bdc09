"""The inspection CLI on a real generated run: stats, show, sheet, verify."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from PIL import Image

from synth.shards import encode_table, sha256_hex
from tests.conftest import run_cli


def test_stats_reports_tasks_and_sizes(ocr1_dataset: Path):
    res = run_cli("-m", "annotate", "stats", str(ocr1_dataset), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["rows"] == 8 and out["families"]["ocr1"]["rows"] == 8
    assert out["tasks"]["ocr1.free_ocr"]["records"] == 8
    # Numbers as numbers (they were "min 612  median 612  max 612" strings).
    widths = [r["width"] for r in _rows_with(ocr1_dataset, ["width"])]
    assert out["image_width"] == {"min": min(widths), "median": int(np.median(widths)), "max": max(widths)}
    free = [len(rec["target"]) for r in _rows_with(ocr1_dataset, ["records"]) for rec in r["records"]
            if rec["task"] == "ocr1.free_ocr"]
    assert out["tasks"]["ocr1.free_ocr"]["target_chars"]["max"] == max(free)
    assert isinstance(out["families"]["ocr1"]["share"], float)
    labels = out["region_labels"]["ocr1"]  # counted from the rows' regions, most frequent first
    assert labels["text"] >= 8 and list(labels.values()) == sorted(labels.values(), reverse=True)
    assert sum(labels.values()) == sum(len(r["regions"]) for r in _rows(ocr1_dataset))
    # What the pages hold, counted from each row's truth and free-OCR text.
    from annotate.dataset import iter_rows

    rows = [row for _, _, row in iter_rows(str(ocr1_dataset), columns=["truth", "records", "regions"])]
    pages = out["ocr1_pages"]
    assert sum(pages["lang"].values()) == sum(pages["watermark"].values()) == 8
    assert pages["inline_formulas"] == sum(rec["target"].count("\\( ") for r in rows for rec in r["records"]
                                           if rec["task"] == "ocr1.free_ocr")
    assert pages["code_listings"] == sum(g["text"].startswith("```") for r in rows for g in r["regions"])
    assert sum(pages["code"].values()) == 8
    assert pages["font"] == dict(Counter(json.loads(r["truth"])["font"] for r in rows))


def _rows(dataset: Path) -> list[dict]:
    return _rows_with(dataset, ["regions"])


def _rows_with(dataset: Path, columns: list[str]) -> list[dict]:
    from annotate.dataset import iter_rows

    return [row for _, _, row in iter_rows(str(dataset), columns=["id", *columns])]


def test_show_draws_boxes_and_prints_records(ocr1_dataset: Path, tmp_path: Path):
    png = tmp_path / "show.png"
    res = run_cli("-m", "annotate", "show", str(ocr1_dataset), "ocr1-t/00001/00002", "--out", str(png))
    assert res.returncode == 0, res.stderr
    assert "<|ref|>" in res.stdout and "Free OCR." in res.stdout
    img = Image.open(png)
    assert img.width >= 256 and len(img.convert("RGB").getcolors(maxcolors=1 << 24)) > 10
    missing = run_cli("-m", "annotate", "show", str(ocr1_dataset), "nope/1/2")
    assert missing.returncode == 2 and "no row with id" in missing.stderr
    # --raw: the stored image itself (what train.generate should be given), or its pixels re-encoded.
    from annotate.dataset import find_row

    stored = find_row(str(ocr1_dataset), "ocr1-t/00001/00002")["image"]["bytes"]
    raw = run_cli("-m", "annotate", "show", str(ocr1_dataset), "ocr1-t/00001/00002", "--raw", "--out",
                  str(tmp_path / "page"))
    assert raw.returncode == 0, raw.stderr
    assert (tmp_path / "page").read_bytes() == stored
    as_png = tmp_path / "page.png"
    assert run_cli("-m", "annotate", "show", str(ocr1_dataset), "2", "--raw", "--out", str(as_png)).returncode == 0
    assert Image.open(as_png).format == "PNG"


def test_sheet_writes_one_png(ocr1_dataset: Path, tmp_path: Path):
    png = tmp_path / "sheet.png"
    res = run_cli("-m", "annotate", "sheet", str(ocr1_dataset), "--n", "6", "--cols", "3", "--cell", "200", "--out", str(png))
    assert res.returncode == 0, res.stderr
    assert Image.open(png).size == (600, 2 * (200 + 12 + 6))  # cells and their captions (12 px font)
    # The default cell is large enough to read a page's text: 768 px, four to a row.
    res = run_cli("-m", "annotate", "sheet", str(ocr1_dataset), "--n", "2", "--out", str(png))
    assert res.returncode == 0, res.stderr
    assert Image.open(png).size == (4 * 768, 768 + 14 + 6)


def test_sheet_pages_with_offset_and_samples_with_a_seed(ocr1_dataset: Path, tmp_path: Path):
    from annotate.pick import pick_rows

    ids = [r["id"] for r in _rows_with(ocr1_dataset, [])]
    assert [r["id"] for r in pick_rows(str(ocr1_dataset), 3, offset=2)] == ids[2:5]
    assert [r["id"] for r in pick_rows(str(ocr1_dataset), 3, offset=7)] == ids[7:]
    draws = {s: [r["id"] for r in pick_rows(str(ocr1_dataset), 3, seed=s)] for s in range(4)}
    assert all(len(set(d)) == 3 and set(d) <= set(ids) for d in draws.values())
    assert draws[1] == [r["id"] for r in pick_rows(str(ocr1_dataset), 3, seed=1)]  # the seed decides
    assert len({tuple(d) for d in draws.values()}) > 1
    # The sheet itself: --random --seed, --offset, and the two together refused (usage, exit 2).
    png = tmp_path / "sheet.png"
    res = run_cli("-m", "annotate", "sheet", str(ocr1_dataset), "--random", "--seed", "1", "--n", "3",
                  "--cell", "64", "--out", str(png))
    assert res.returncode == 0 and "(3 samples)" in res.stdout, res.stderr
    res = run_cli("-m", "annotate", "sheet", str(ocr1_dataset), "--offset", "6", "--cell", "64", "--out", str(png))
    assert res.returncode == 0 and "(2 samples)" in res.stdout, res.stderr
    res = run_cli("-m", "annotate", "sheet", str(ocr1_dataset), "--offset", "2", "--random", "--out", str(png))
    assert res.returncode == 2 and "--offset and --random" in res.stderr


def test_verify_passes_clean_run(ocr1_dataset: Path):
    res = run_cli("-m", "annotate", "verify", str(ocr1_dataset))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "8 rows: OK" in res.stdout


def test_verify_catches_corrupted_shard(ocr1_dataset: Path, tmp_path: Path):
    copy = tmp_path / "ds"
    shutil.copytree(ocr1_dataset, copy)
    shard = sorted(copy.glob("*.arrow"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    res = run_cli("-m", "annotate", "verify", str(copy))
    assert res.returncode == 1
    assert f"BAD {shard.name}: sha256" in res.stdout


def _rewrite(shard: Path, manifest_path: Path, mutate) -> str:
    with pa.memory_map(str(shard)) as src:
        rows = ipc.open_stream(src).read_all().to_pylist()
    bad_id = mutate(rows)
    data = encode_table(rows)
    shard.write_bytes(data)
    # keep the manifest consistent so that only the row checks can catch it
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][shard.name].update(bytes=len(data), sha256=sha256_hex(data))
    manifest_path.write_text(json.dumps(manifest))
    return bad_id


def test_verify_catches_tampered_box(ocr1_dataset: Path, tmp_path: Path):
    copy = tmp_path / "ds"
    shutil.copytree(ocr1_dataset, copy)
    shard = sorted(copy.glob("*.arrow"))[0]

    def move_a_region(rows):
        from annotate.ocr1 import grounded_markdown
        from synth.sample import Region

        row = rows[2]
        # Move the first text-bearing region into the page's blank top-left corner, in the
        # regions column AND the grounded target alike: only the ink check can notice.
        i = next(k for k, r in enumerate(row["regions"]) if r["text"].strip())
        row["regions"][i]["box"] = [1, 1, 9, 5]
        target = grounded_markdown([Region(r["label"], tuple(r["box"]), r["text"]) for r in row["regions"]])
        rec = next(r for r in row["records"] if r["task"] == "ocr1.grounded_markdown")
        rec["target"] = target
        if row["task"] == "ocr1.grounded_markdown":
            row["target"] = target
        return row["id"]

    bad_id = _rewrite(shard, copy / "manifest.json", move_a_region)
    res = run_cli("-m", "annotate", "verify", str(copy))
    assert res.returncode == 1, res.stdout
    bad_lines = [ln for ln in res.stdout.splitlines() if ln.startswith("BAD")]
    assert bad_lines and all(bad_id in ln for ln in bad_lines), res.stdout
    assert any("box [1, 1, 9, 5] lies on no ink" in ln for ln in bad_lines), res.stdout


def test_verify_catches_out_of_range_box(ocr1_dataset: Path, tmp_path: Path):
    copy = tmp_path / "ds"
    shutil.copytree(ocr1_dataset, copy)
    shard = sorted(copy.glob("*.arrow"))[1]

    def break_line(rows):
        rows[0]["lines"][0]["box"] = [10, 10, 1200, 40]
        return rows[0]["id"]

    bad_id = _rewrite(shard, copy / "manifest.json", break_line)
    res = run_cli("-m", "annotate", "verify", str(copy))
    assert res.returncode == 1
    assert f"({bad_id}): lines[0].box [10, 10, 1200, 40]" in res.stdout
