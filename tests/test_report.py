"""``annotate report``: one self-contained HTML file (issue 17 item 11) on a real mixture run."""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from annotate.dataset import iter_rows
from tests.conftest import run_cli


class _Page(HTMLParser):
    """Every tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(demo_dataset, tmp_path_factory) -> tuple[Path, str, _Page]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    res = run_cli("-m", "annotate", "report", str(demo_dataset), "--out", str(out))
    assert res.returncode == 0, res.stderr
    html = out.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    return out, html, page


def test_report_is_one_self_contained_file(report):
    out, html, page = report
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object"), tag
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith("data:image/jpeg;base64,"), (tag, attrs[key][:60])
    imgs = [a for t, a in page.tags if t == "img"]
    assert imgs
    for a in imgs:  # each thumbnail is a real JPEG of at most 512 px, the size the tag says
        img = Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        assert img.format == "JPEG" and max(img.size) <= 512
        assert (img.width, img.height) == (int(a["width"]), int(a["height"]))
    assert "url(" not in html and "@import" not in html
    assert out.stat().st_size < 2_000_000


def test_report_shows_each_family_with_its_rows_targets_looks_and_languages(report, demo_dataset):
    _, html, page = report
    rows = [r for _, _, r in iter_rows(str(demo_dataset), columns=["id", "family", "lang", "records", "truth"])]
    families = Counter(r["family"] for r in rows)
    text = "".join(page.text)
    for fam, n in families.items():
        assert f"{fam} ({min(n, 6)} of {n} rows)" in text
    for r in rows:  # 8 rows, all within 6 per family: every row, every record appears
        assert r["id"] in text
        for rec in r["records"]:
            assert rec["target"][:200] in text  # the text as the reader sees it, unescaped once
    # Targets are HTML tables and <|ref|> markup: escaped in the file, never live tags.
    chart = next(r for r in rows if r["family"] == "chart")["records"][0]["target"]
    assert chart.startswith("<table><tr><td></td>") and chart[:40] not in html
    assert "&lt;table&gt;&lt;tr&gt;&lt;td&gt;&lt;/td&gt;" in html
    assert "<|ref|>" not in html and "&lt;|ref|&gt;" in html
    # The look and language of each page, in the families table and on each row.
    ocr1 = [r for r in rows if r["family"] == "ocr1"]
    looks = Counter("photo" if t["realism"]["photo"] else "scan" if t["realism"]["scan"] else "clean"
                    for t in (json.loads(r["truth"]) for r in ocr1))
    langs = Counter(r["lang"] for r in ocr1)
    cells = [t for t in page.text if t.strip()]
    i = cells.index("ocr1")
    assert cells[i + 3] == ", ".join(f"{k} {v}" for k, v in sorted(looks.items(), key=lambda kv: (-kv[1], kv[0])))
    assert cells[i + 4] == ", ".join(f"{k} {v}" for k, v in sorted(langs.items(), key=lambda kv: (-kv[1], kv[0])))
    for r in ocr1:
        assert f"language {r['lang']}, look " in text


def test_report_rows_per_family_and_thumbnail_size_bound_the_file(demo_dataset, tmp_path, report):
    small = tmp_path / "small.html"
    res = run_cli("-m", "annotate", "report", str(demo_dataset), "--out", str(small), "--rows-per-family", "1",
                  "--thumb", "128", "--max-target-chars", "50")
    assert res.returncode == 0, res.stderr
    page = _Page()
    page.feed(small.read_text(encoding="utf-8"))
    text = "".join(page.text)
    assert "ocr1 (1 of 4 rows)" in text and "more characters)" in text
    imaged = sum(1 for t, _ in page.tags if t == "img")
    assert imaged == 4  # one per family with images (chart, geometry, ocr1, vision; text has none)
    assert small.stat().st_size < report[0].stat().st_size / 3
