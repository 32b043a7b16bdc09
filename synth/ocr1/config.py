"""The recipe options of the ocr1 family."""

from __future__ import annotations

from dataclasses import dataclass, field

from synth.config_checks import bad_probability


@dataclass
class Config:
    """Options of OCR 1.0 page generation (every field defaulted; YAML keys match).

    long_side: pixels of the rasterised page's longer side.
    image_format: "jpeg" or "png" encoding of the stored image.
    jpeg_quality: JPEG quality (1-95) when image_format is "jpeg". The default, 60, stores a
      clean page in about 150 KB (111 KB of image) where 90 took 230 KB; Tesseract reads
      as many English words at 60 as at 90, and 1.2 points fewer Chinese ideographs
      (docs/ocr1.md, "Stored bytes"). Raise it for pixel fidelity (SSIM over the text
      0.957 at 60, 0.994 at 90); 75 keeps Chinese within 0.5 points of 90.
    png_compress_level: zlib level (0-9) when image_format is "png".
    langs: language -> weight ("en", "zh").
    page_sizes: page size name -> weight (A4, A5, B5, LETTER, LEGAL).
    landscape_prob: probability of a landscape page.
    columns: number of body columns ("1", "2", "3") -> weight; narrow pages cap it.
    fonts: font families allowed (empty: every family that sets the page's language);
      Latin: Vera, DejaVuSans, DejaVuSerif, STIX, Helvetica, Times, Courier, ComputerModern; Chinese:
      STSong, DroidSansFallback.
    font_size_min, font_size_max: body font size range in points.
    margin_min, margin_max: page margin range as a fraction of the page's short side.
    blocks: body block kind -> weight (paragraph, heading, list, table, equation, figure,
      sideways_table: a 5-9 column table and its caption turned 90 degrees, read upward;
      sideways_figure: a landscape figure (chart or drawing) and its caption turned 90 degrees;
      references: a "References" heading and numbered bibliography entries;
      code: a monospaced listing (Python from the standard library's source, a doctest
      session or JSON), sometimes shaded or syntax-coloured, whose markdown is a fenced block).
    chart_prob: fraction of figures taken from the chart family (synth.charts.figure_png)
      when it is installed; the rest are text-free vector drawings.
    chart_pool: charts per language in the per-process pool that figures draw from (each
      chart is rendered once per process; larger pools cost more warm-up, add variety).
    title_prob: probability of a title block (title, author line, maybe an abstract).
    header_prob, footer_prob, page_number_prob, footnote_prob: probabilities of a running
      header, a footer line, a page number and footnotes.
    fill: body content planned relative to the page's estimated capacity. At 1 or more
      the page is full: blocks of every kind up to 70 % of the estimate, then paragraphs
      made as the layout needs them, so no column ends more than a heading and two lines
      short of its foot (docs/ocr1.md, "Fill"); values above 1 are the same as 1. Below 1
      the page is short on purpose and its columns end early.
    scan_prob, photo_prob: probabilities of the scan and photo looks of synth.realism.
    emphasis_prob: probability that an English body paragraph sets one or two runs of
      words in the bold or italic face, that an English caption sets its label in bold,
      and that an English list opens each item with a bold term (``**Scope:** ...``); the
      markdown target marks them ``**...**`` / ``*...*``, read back from the font of each
      drawn word.
    margin_note_prob: probability of a rotated line in a side margin (an arXiv-style
      identifier, a DOI, a submission date) read upward on the left or downward on the
      right; it is labelled ``header`` and read last.
    inner_page_prob: probability that the page is an inner page of a longer document: no
      title block, and the body opens with the tail of a paragraph carried over from the
      previous page (mid-sentence, no first-line indent).
    equation_pool: display equations per process that pages draw from: the 40 classic
      equations, then random ones from ``equation_grammar`` (40 gives the classics only).
      Each is rendered once per process (~5 ms).
    wide_float_prob: probability that a multi-column page has a figure or table spanning
      all columns at the top of its body (after the title block, before the columns).
    table_phrase_prob: probability that a table header or row-label cell holds a phrase
      of 2-4 words, half of the time broken over two lines.
    nested_list_prob: probability that a list nests a sub-list of 2-3 dash items under
      one of its items (markdown: the sub-items indented under the item's marker).
    accent_prob: probability that the title and headings are set in a dark accent colour
      (navy, dark red, green, teal, purple, orange) instead of black.
    inline_math_prob: probability that a body paragraph without emphasis sets 1-3 short
      formulas between its words (in Chinese, between two ideographs); targets write them
      ``\\( latex \\)`` in place.
    inline_math_pool: inline formulas that pages draw from (entry i is the grammar's
      formula seeded from i, the same in every process); each is rendered once per node.
    watermark_prob: probability of a light diagonal watermark word ("DRAFT", "机密") behind
      the text; it is drawn as an image and not annotated, so targets stay the document's
      text (``truth["watermark"]`` names it).
    equation_number_prob: probability that a display equation is numbered, ``(7)`` or
      ``(3.2)`` set as text flush right on its middle line; the markdown writes
      ``\\[ latex \\tag{7} \\]``, read back from the PDF's words.
    locate_queries: text-location records per page (task ``ocr1.locate``): a phrase
      printed on the page (1-4 words, 2-8 ideographs) and the box of every place it is
      printed, read from the PDF's text (``synth.ocr1.locate``); 0 for none.
    hyphenate_prob: probability that an English page hyphenates its body text, lists,
      captions and footnotes at line ends, as LaTeX does (reportlab with pyphen's en_US
      patterns); grounded markdown and free OCR join the word again, line grounding keeps
      the lines as printed.
    """

    long_side: int = 1024
    image_format: str = "jpeg"
    jpeg_quality: int = 60
    png_compress_level: int = 6
    langs: dict[str, float] = field(default_factory=lambda: {"en": 0.7, "zh": 0.3})
    page_sizes: dict[str, float] = field(
        default_factory=lambda: {"A4": 0.45, "LETTER": 0.3, "A5": 0.1, "B5": 0.1, "LEGAL": 0.05})
    landscape_prob: float = 0.1
    columns: dict[str, float] = field(default_factory=lambda: {"1": 0.5, "2": 0.35, "3": 0.15})
    fonts: list[str] = field(default_factory=list)
    font_size_min: float = 8.5
    font_size_max: float = 12.0
    margin_min: float = 0.06
    margin_max: float = 0.13
    blocks: dict[str, float] = field(default_factory=lambda: {
        "paragraph": 0.45, "heading": 0.15, "list": 0.1, "table": 0.1, "equation": 0.1, "figure": 0.1,
        "sideways_table": 0.02, "sideways_figure": 0.02, "references": 0.03, "code": 0.03})
    chart_prob: float = 0.3
    chart_pool: int = 48
    title_prob: float = 0.6
    header_prob: float = 0.6
    footer_prob: float = 0.4
    page_number_prob: float = 0.7
    footnote_prob: float = 0.25
    fill: float = 1.0
    scan_prob: float = 0.0
    photo_prob: float = 0.0
    emphasis_prob: float = 0.3
    margin_note_prob: float = 0.1
    inner_page_prob: float = 0.3
    equation_pool: int = 200
    wide_float_prob: float = 0.3
    table_phrase_prob: float = 0.3
    nested_list_prob: float = 0.25
    accent_prob: float = 0.25
    inline_math_prob: float = 0.2
    inline_math_pool: int = 400
    watermark_prob: float = 0.05
    equation_number_prob: float = 0.5
    locate_queries: int = 1
    hyphenate_prob: float = 0.4

    def __post_init__(self) -> None:
        # Recipes build the Config directly: fail at load time, not in a worker.
        validate(self)


PAGE_SIZES = ("A4", "A5", "B5", "LETTER", "LEGAL")
BLOCK_KINDS = ("paragraph", "heading", "list", "table", "equation", "figure", "sideways_table", "sideways_figure",
               "references", "code")


def validate(cfg: Config) -> None:
    """Raise ValueError naming the first bad field, its value and what would be valid."""
    def bad(name: str, valid: str) -> None:
        raise ValueError(f"ocr1 config: {name}={getattr(cfg, name)!r} is invalid; expected {valid}")

    if not 64 <= cfg.long_side <= 8192:
        bad("long_side", "an int in 64..8192")
    if cfg.image_format not in ("jpeg", "png"):
        bad("image_format", "'jpeg' or 'png'")
    if not 1 <= cfg.jpeg_quality <= 95:
        bad("jpeg_quality", "an int in 1..95")
    if not 0 <= cfg.png_compress_level <= 9:
        bad("png_compress_level", "an int in 0..9")
    for name, valid in (("langs", {"en", "zh"}), ("page_sizes", set(PAGE_SIZES)),
                        ("columns", {"1", "2", "3"}), ("blocks", set(BLOCK_KINDS))):
        weights = getattr(cfg, name)
        if not weights or set(weights) - valid or min(weights.values()) < 0 or sum(weights.values()) <= 0:
            bad(name, f"non-negative weights over keys {sorted(valid)} with a positive sum")
    from synth.ocr1.fonts import CJK_FAMILIES, LATIN_FAMILIES, families_for

    if set(cfg.fonts) - set(LATIN_FAMILIES + CJK_FAMILIES):
        bad("fonts", f"a list of font families from {list(LATIN_FAMILIES + CJK_FAMILIES)}")
    for lang, weight in cfg.langs.items():
        if weight > 0 and lang in ("en", "zh") and not allowed_families(cfg, lang):
            bad("fonts", f"at least one family that sets {lang!r}: {list(families_for(lang))}")
    if not 4 <= cfg.font_size_min <= cfg.font_size_max <= 24:
        bad("font_size_min", "4 <= font_size_min <= font_size_max <= 24")
    if not 0.03 <= cfg.margin_min <= cfg.margin_max <= 0.2:
        bad("margin_min", "0.03 <= margin_min <= margin_max <= 0.2")
    name = bad_probability(cfg)
    if name:
        bad(name, "a probability in [0, 1]")
    if not 1 <= cfg.chart_pool <= 10_000:
        bad("chart_pool", "an int in 1..10000")
    if not 1 <= cfg.equation_pool <= 100_000:
        bad("equation_pool", "an int in 1..100000")
    if not 1 <= cfg.inline_math_pool <= 100_000:
        bad("inline_math_pool", "an int in 1..100000")
    if not 0 <= cfg.locate_queries <= 10:
        bad("locate_queries", "an int in 0..10")
    if not 0.3 <= cfg.fill <= 3.0:
        bad("fill", "a float in [0.3, 3.0]")


def allowed_families(cfg: Config, lang: str) -> tuple[str, ...]:
    """The font families a page in ``lang`` may use under this config."""
    from synth.ocr1.fonts import families_for

    return tuple(f for f in families_for(lang) if not cfg.fonts or f in cfg.fonts)
