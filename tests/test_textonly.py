"""Text-only family: deterministic passages, image-free rows that pass check."""

from __future__ import annotations

import numpy as np
import pytest

from annotate import prompts
from annotate import textonly as ann
from synth import textonly as gen
from tests.conftest import family_row


def _row(seed: int, cfg: gen.Config | None = None) -> dict:
    return family_row("text", seed, cfg)


def _text(row: dict) -> str:
    """A text-only row's passage: the target of its one record (rows store no separate text)."""
    return row["records"][0]["target"]


def test_same_seed_same_text():
    assert _row(3) == _row(3)
    assert _text(_row(3)) != _text(_row(4))


def test_rows_pass_check_and_have_no_image():
    rows = [_row(s) for s in range(60)]
    for row in rows:
        assert ann.check(row) == []
        assert row["image"] is None and row["width"] == row["height"] == 0
        assert row["task"] == prompts.TASK_TEXT and row["prompt"] == "" and row["target"] == _text(row)
        assert "text" not in row  # the passage is stored once, as the record's target
        assert 0 < len(_text(row)) <= gen.Config().max_chars
    langs = {r["lang"] for r in rows}
    assert langs == {"en", "zh"}
    zh = [_text(r) for r in rows if r["lang"] == "zh"]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in zh)


def test_markdown_documents_have_structure():
    cfg = gen.Config(markdown_prob=1.0, zh_prob=0.0, min_paragraphs=4, max_paragraphs=6)
    texts = [_text(_row(s, cfg)) for s in range(20)]
    assert all(t.startswith("# ") for t in texts)
    assert any("\n## " in t for t in texts)
    assert any("\n- " in t or "\n1. " in t for t in texts)
    tables = [t for t in texts if "<table>" in t]
    assert tables and all(t.count("<table>") == t.count("</table>") for t in tables)


def test_max_chars_is_respected():
    cfg = gen.Config(max_chars=300, min_paragraphs=5, max_paragraphs=6)
    for s in range(10):
        assert len(_text(_row(s, cfg))) <= 300


def test_check_catches_broken_rows():
    row = _row(1)
    assert ann.check(dict(row, records=[dict(row["records"][0], target="")]))
    assert ann.check(dict(row, records=[dict(row["records"][0], target=_text(row) + "x")]))
    assert ann.check(dict(row, image={"bytes": b"x", "path": "p.png"}))
    assert ann.check(dict(row, records=[dict(row["records"][0], prompt=prompts.FREE_OCR)]))


def test_overlay_renders_text():
    for cfg in (gen.Config(zh_prob=0.0), gen.Config(zh_prob=1.0)):
        pic = ann.overlay(_row(2, cfg))
        gray = np.asarray(pic.convert("L"))
        assert pic.width == ann.PREVIEW_WIDTH and (gray < 128).mean() > 0.005


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="zh_prob"):
        gen.generate(gen.Config(zh_prob=2.0), np.random.default_rng(0))
    with pytest.raises(ValueError, match="min_paragraphs"):
        gen.generate(gen.Config(min_paragraphs=3, max_paragraphs=1), np.random.default_rng(0))
