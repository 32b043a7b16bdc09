"""OCR 1.0 document pages (family "ocr1"): reportlab lays out a page, PyMuPDF renders it
and reads every word back, and the annotations come from what was rendered.

Public API: ``Config``, ``generate(config, rng) -> Sample`` and, for tests and
debugging, ``render_pdf(config, rng)`` which returns the intermediate PDF of the page
that ``generate`` would draw from the same generator state.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from formats.bins import boxes_to_bins
from synth.ocr1.config import Config, validate
from synth.sample import Line, Region, Sample

__all__ = ["Config", "generate", "render_pdf"]


def _config(config: Config | dict[str, Any] | None) -> Config:
    if config is None:
        cfg = Config()
    elif isinstance(config, Config):
        cfg = config
    elif isinstance(config, dict):
        known = set(Config.__dataclass_fields__)
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"ocr1 config: unknown keys {unknown}; valid keys: {sorted(known)}")
        cfg = Config(**config)
    else:
        raise TypeError(f"ocr1 config must be a Config or a dict, got {type(config).__name__}")
    validate(cfg)
    return cfg


def render_pdf(config: Config | dict[str, Any] | None, rng: np.random.Generator, embed_fonts: bool = False):
    """Lay out one page: (PDF bytes, PagePlan, drawn records). First step of ``generate``.

    The PDF names its TrueType faces without embedding them (``fonts.SharedTTFont``): only
    this process, which registered them, draws it as ``generate`` does. ``embed_fonts``
    embeds them, for a PDF to be saved or opened elsewhere (same pixels and words here).
    """
    import contextlib

    from synth.ocr1 import fonts
    from synth.ocr1.content import make_plan
    from synth.ocr1.layout import build_pdf

    plan = make_plan(_config(config), rng)
    with fonts.embedded_fonts() if embed_fonts else contextlib.nullcontext():
        pdf, drawn = build_pdf(plan)
    return pdf, plan, drawn


def _bin_boxes(boxes_px: np.ndarray, mapper, W: int, H: int) -> np.ndarray:
    """Map pixel boxes through the realism point map (if any), clip, and bin them (one
    numpy pass for the page's every box)."""
    b = np.asarray(boxes_px, dtype=float).reshape(-1, 4)
    if mapper is not None and len(b):
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)  # (N, 4, 2)
        m = np.asarray(mapper(corners.reshape(-1, 2)), dtype=float).reshape(-1, 4, 2)
        b = np.concatenate([m.min(axis=1), m.max(axis=1)], axis=1)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, W)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, H)
    return boxes_to_bins(b, W, H)


class _Clock:
    """Adds the CPU seconds since the last mark to ``timings[stage]`` (nothing when None)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings
        self.t = time.process_time() if timings is not None else 0.0

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.process_time()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
            self.t = now


def generate(config: Config | dict[str, Any] | None, rng: np.random.Generator,
             timings: dict[str, float] | None = None) -> Sample:
    """Generate one annotated OCR 1.0 page (a pure function of config and rng state).

    ``timings``, when given, accumulates this process's CPU seconds per stage ("plan",
    "layout", "read-back", "raster", "realism", "boxes", "encode"): what
    ``bench/bench_ocr1.py`` reports.
    """
    from synth.ocr1 import locate
    from synth.ocr1.content import make_plan
    from synth.ocr1.layout import build_pdf, live_area
    from synth.ocr1.readback import PageText, read_regions
    from synth.mupdf import release_store
    from synth.ocr1.render import apply_realism, display_list, encode, open_page, rasterize

    clock = _Clock(timings)
    cfg = _config(config)
    plan = make_plan(cfg, rng)
    clock("plan")
    pdf, drawn = build_pdf(plan)
    clock("layout")
    page = open_page(pdf)
    drawing = display_list(page)  # the PDF is interpreted once, for the text and the pixels
    clock("raster")
    text_page = PageText(page, drawing)  # one TextPage serves every extraction of the page's text
    regions, orphans = read_regions(text_page, drawn, plan.lang, plan.font_size)
    clock("read-back")
    scan = bool(rng.random() < cfg.scan_prob)  # nothing above draws from rng after the plan
    photo = bool(rng.random() < cfg.photo_prob)
    # A page stored as drawn stays in OpenCV's channel order from the raster to the JPEG.
    as_drawn_bgr = cfg.image_format == "jpeg" and not (scan or photo)
    img, scale = rasterize(page, cfg.long_side, drawing, bgr=as_drawn_bgr)
    clock("raster")
    img, mapper = apply_realism(img, rng, scan, photo)
    H, W = img.shape[:2]
    clock("realism")
    text = "\n\n".join(r.plain for r in regions if r.plain)
    # Drawn after the looks, so the pixels do not depend on how many are asked.
    queries = locate.queries(text_page, plan.lang, rng, cfg.locate_queries, text) if cfg.locate_queries else []
    release_store()  # the page's last MuPDF call is done: drop what MuPDF decoded for it
    clock("read-back")

    # One batched mapping for every box: regions, lines, words, located phrases, the live area.
    lx0, ly0, lx1, ly1 = live_area(plan)
    extent = np.asarray([(lx0, plan.page_h - ly1, lx1, plan.page_h - ly0)] + [r.box for r in regions], dtype=float)
    # Regions too: CJK lines may hang a closing full stop past the column edge.
    live_pts = (*extent[:, :2].min(axis=0), *extent[:, 2:].max(axis=0))
    boxes = [r.box for r in regions]
    boxes += [b for r in regions for _t, b in r.lines]
    boxes += [b for r in regions for _t, b in r.words]
    boxes += [b for q in queries for b in q.boxes]
    boxes.append(live_pts)
    it = iter(_bin_boxes(np.asarray(boxes, dtype=float) * scale, mapper, W, H).tolist())
    out_regions = [Region(r.label, tuple(next(it)), r.content) for r in regions]
    out_lines = [Line(t, tuple(next(it))) for r in regions for t, _b in r.lines]
    words = [[t, next(it)] for r in regions for t, _b in r.words]
    located = [{"text": q.text, "boxes": [next(it) for _b in q.boxes]} for q in queries]
    live = next(it)

    truth = {
        "page": {"size": plan.page_name, "landscape": plan.landscape,
                 "width_pt": round(plan.page_w, 2), "height_pt": round(plan.page_h, 2)},
        "columns": plan.columns,
        "inner_page": plan.inner_page,
        "hyphenated": plan.hyphenated,
        "watermark": plan.watermark.text if plan.watermark is not None else None,
        "font": plan.family,
        "font_size": round(plan.font_size, 2),
        "lang": plan.lang,
        "realism": {"scan": scan, "photo": photo},
        "live_box": live,
        "unassigned_words": orphans,
        "words": words,
        "locate": located,
    }
    clock("boxes")
    image = encode(img, cfg.image_format, cfg.jpeg_quality, cfg.png_compress_level, bgr=as_drawn_bgr)
    clock("encode")
    return Sample(family="ocr1", image=image, image_format=cfg.image_format, width=W, height=H,
                  regions=out_regions, lines=out_lines, text=text, truth=truth, lang=plan.lang)
