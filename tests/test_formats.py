"""Shards load unchanged with pyarrow.ipc, Hugging Face datasets and Ray Data."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from synth.shards import BATCH_ROWS, SCHEMA


def test_pyarrow_reads_stream_shards_zero_copy(ocr1_dataset: Path):
    manifest = json.loads((ocr1_dataset / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 2
    for name, entry in manifest["shards"].items():
        with pa.memory_map(str(ocr1_dataset / name)) as src:
            reader = ipc.open_stream(src)
            assert reader.schema.equals(SCHEMA, check_metadata=True)
            table = reader.read_all()
        assert table.num_rows == entry["rows"]
        assert all(b.num_rows <= BATCH_ROWS for b in table.to_batches())
        row = table.slice(0, 1).to_pylist()[0]
        assert row["image"]["bytes"][:3] in (b"\xff\xd8\xff", b"\x89PN")
        assert {r["task"] for r in row["records"]} <= {"ocr1.grounded_markdown", "ocr1.free_ocr", "ocr1.line_grounding",
                                                     "ocr1.locate"}
        assert {"ocr1.grounded_markdown", "ocr1.free_ocr", "ocr1.line_grounding"} <= {r["task"] for r in row["records"]}


def test_huggingface_datasets_loads_files_and_directory(ocr1_dataset: Path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    shard = sorted(ocr1_dataset.glob("*.arrow"))[0]
    ds = datasets.Dataset.from_file(str(shard))
    assert isinstance(ds.features["image"], datasets.Image)
    img = ds[0]["image"]
    assert isinstance(img, Image.Image) and img.size == (ds[0]["width"], ds[0]["height"])
    whole = datasets.load_from_disk(str(ocr1_dataset))
    assert whole.num_rows == 8
    assert whole[7]["records"][0]["task"] == "ocr1.grounded_markdown"


@pytest.mark.slow
def test_ray_data_reads_shards(ocr1_dataset: Path, ray_local):
    from synth.raydata import read_shards

    ds = read_shards(str(ocr1_dataset))
    assert ds.count() == 8
    rows = ds.take_all()
    ids = sorted(r["id"] for r in rows)
    assert ids == sorted(f"ocr1-t/{s:05d}/{r:05d}" for s in range(2) for r in range(4))
    assert rows[0]["image"]["bytes"]
