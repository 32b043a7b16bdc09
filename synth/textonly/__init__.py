"""Text-only family: image-free passages for language modelling (about 10% of the mix).

A sample is English prose (consecutive sentences of the Python reference manual),
Chinese pseudo-prose (common words), or a markdown-structured document built from the
same sources: ``#``/``##`` headings, paragraphs, bullet or numbered lists and HTML
tables (``<table><tr><td>``, the convention the OCR 1.0 targets use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth import text_sources
from synth.config_checks import bad_probability
from synth.sample import Sample


@dataclass
class Config:
    """Options of the text-only family.

    zh_prob: probability of a Chinese passage (otherwise English).
    markdown_prob: probability of a markdown-structured document (otherwise plain paragraphs).
    min_paragraphs: fewest paragraphs (or document sections) per passage.
    max_paragraphs: most paragraphs (or document sections) per passage.
    min_sentences: fewest sentences per paragraph.
    max_sentences: most sentences per paragraph.
    max_chars: passages are cut at the last block boundary before this many characters.
    """

    zh_prob: float = 0.3
    markdown_prob: float = 0.35
    min_paragraphs: int = 1
    max_paragraphs: int = 6
    min_sentences: int = 2
    max_sentences: int = 7
    max_chars: int = 6000

    def __post_init__(self) -> None:
        # Fail when a recipe is loaded, not in the middle of a shard.
        _validate(self)


def _validate(cfg: Config) -> None:
    name = bad_probability(cfg)
    if name:
        raise ValueError(f"text {name}={getattr(cfg, name)!r}: must be a probability in [0, 1]")
    if not 1 <= cfg.min_paragraphs <= cfg.max_paragraphs:
        raise ValueError(f"text paragraphs: need 1 <= min_paragraphs <= max_paragraphs, got {cfg.min_paragraphs}, {cfg.max_paragraphs}")
    if not 1 <= cfg.min_sentences <= cfg.max_sentences:
        raise ValueError(f"text sentences: need 1 <= min_sentences <= max_sentences, got {cfg.min_sentences}, {cfg.max_sentences}")
    if cfg.max_chars < 20:
        raise ValueError(f"text max_chars={cfg.max_chars}: must be at least 20")


def _paragraph(cfg: Config, lang: str, rng: np.random.Generator) -> str:
    return text_sources.paragraph(rng, lang, int(rng.integers(cfg.min_sentences, cfg.max_sentences + 1)))


def _item(lang: str, rng: np.random.Generator) -> str:
    """A short list item: a sentence (English) or a short phrase (Chinese)."""
    if lang == "zh":
        return text_sources.chinese_sentence(rng, int(rng.integers(3, 8)))
    return text_sources.english_paragraph(rng, 1)


def _list_block(lang: str, rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 6))
    numbered = rng.random() < 0.4
    return "\n".join(f"{i + 1}. " + _item(lang, rng) if numbered else "- " + _item(lang, rng) for i in range(n))


def _table_block(lang: str, rng: np.random.Generator) -> str:
    """An HTML table: a header row of words, then rows of a word and numbers."""
    cols = int(rng.integers(2, 5))
    rows = int(rng.integers(2, 6))
    header = text_sources.words(rng, lang, cols)
    if lang == "en":
        header = [w.capitalize() for w in header]
    body = []
    for _ in range(rows):
        label = text_sources.words(rng, lang, 1)[0]
        decimals = int(rng.integers(0, 3))
        nums = [f"{float(rng.uniform(0, 1000)):.{decimals}f}" for _ in range(cols - 1)]
        body.append([label, *nums])
    def tr(cells: list[str]) -> str:
        return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    return "<table>" + tr(header) + "".join(tr(r) for r in body) + "</table>"


def _markdown(cfg: Config, lang: str, n_sections: int, rng: np.random.Generator) -> list[str]:
    blocks = ["# " + text_sources.title(rng, lang)]
    for s in range(n_sections):
        if s and rng.random() < 0.6:
            blocks.append("## " + text_sources.title(rng, lang))
        blocks.append(_paragraph(cfg, lang, rng))
        u = rng.random()
        if u < 0.3:
            blocks.append(_list_block(lang, rng))
        elif u < 0.45:
            blocks.append(_table_block(lang, rng))
    return blocks


def _cut(blocks: list[str], max_chars: int) -> str:
    """Join blocks with blank lines, dropping trailing blocks past ``max_chars``.

    The first block is always kept (cut at a character limit if it alone is too long).
    """
    out = [blocks[0][:max_chars]]
    size = len(out[0])
    for b in blocks[1:]:
        if size + 2 + len(b) > max_chars:
            break
        out.append(b)
        size += 2 + len(b)
    return "\n\n".join(out)


def generate(config: Config, rng: np.random.Generator) -> Sample:
    """Generate one text-only passage (no image)."""
    _validate(config)
    lang = "zh" if rng.random() < config.zh_prob else "en"
    n = int(rng.integers(config.min_paragraphs, config.max_paragraphs + 1))
    if rng.random() < config.markdown_prob:
        style, blocks = "markdown", _markdown(config, lang, n, rng)
    else:
        style, blocks = "prose", [_paragraph(config, lang, rng) for _ in range(n)]
    text = _cut(blocks, config.max_chars)
    return Sample(family="text", image=None, image_format="", width=0, height=0, text=text, lang=lang,
                  truth={"style": style, "chars": len(text)})
