"""``annotate report``: one self-contained HTML page to judge a dataset at a glance.

The page holds the dataset's counts (``annotate stats``), a table of families with the
looks and languages of their rows, and per family a seeded sample of rows: each row's
inspection picture (its boxes drawn, as ``annotate show`` draws them) as a JPEG
thumbnail, its id, size, language and look, and every record's task, prompt and target.

Self-contained: images are inlined as ``data:`` URIs, the style sheet is inline, there is
no script and no link to anything outside the file. Every piece of dataset text is
HTML-escaped (targets are themselves HTML tables and ``<|ref|>`` markup). The size stays
bounded: ``rows_per_family`` rows per family, thumbnails at most ``thumb`` pixels on their
longest side at JPEG quality 80, targets cut at ``max_target_chars`` characters.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from PIL import Image

from annotate.dataset import iter_rows, list_shards
from annotate.pick import choose, positions_by_family, take_rows
from annotate.stats import dataset_stats, look, row_truth, show_summary

JPEG_QUALITY = 80

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.row { display: flex; gap: 1em; border-top: 1px solid #ddd; padding: 0.8em 0; }
.row img { flex: none; border: 1px solid #bbb; }
.meta { font-weight: 600; margin-bottom: 0.3em; }
.noimg { width: 160px; height: 60px; background: #f4f4f4; color: #777; display: flex; align-items: center;
         justify-content: center; flex: none; }
pre { white-space: pre-wrap; word-break: break-word; background: #fafafa; border: 1px solid #eee;
      padding: 4px 6px; margin: 0.2em 0 0.6em; max-height: 24em; overflow: auto; font-size: 12px; }
.warn { color: #a00; }
"""


def esc(value: Any) -> str:
    """HTML-escaped text of any value (quotes too)."""
    return html.escape(str(value), quote=True)


def thumbnail_uri(img: Image.Image, side: int) -> tuple[str, int, int]:
    """A JPEG data URI of ``img`` shrunk to at most ``side`` px, and its width and height."""
    t = img.convert("RGB")
    t.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    t.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), t.width, t.height


def _picture(row: dict[str, Any]) -> tuple[Image.Image | None, str]:
    """The row's inspection picture, or its stored image with the reason boxes are missing."""
    from synth import families
    from synth.rows import row_image

    try:
        return families.annotator_module(row["family"]).overlay(row), ""
    except Exception as exc:  # noqa: BLE001 - the report still shows the page, and says why
        img = row_image(row)
        return img, f"boxes not drawn: {type(exc).__name__}: {exc}"


def _table(head: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td class=\"num\">{esc(v)}</td>" if i in numeric else f"<td>{esc(v)}</td>"
                                    for i, v in enumerate(r)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _counts(c: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def _looks_and_langs(location: str, allow_incomplete: bool = False) -> dict[str, dict[str, dict[str, int]]]:
    """Per family, rows per look and rows per language."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for _, _, row in iter_rows(location, columns=["family", "lang", "truth"], allow_incomplete=allow_incomplete):
        d = out.setdefault(row["family"], {"look": {}, "lang": {}})
        lk, lang = look(row_truth(row)), str(row.get("lang") or "-")
        d["look"][lk] = d["look"].get(lk, 0) + 1
        d["lang"][lang] = d["lang"].get(lang, 0) + 1
    return out


def _row_html(row: dict[str, Any], thumb: int, max_chars: int) -> str:
    truth = row_truth(row)
    img, note = _picture(row) if row.get("image") is not None else (None, "")
    if img is not None:
        uri, w, h = thumbnail_uri(img, thumb)
        pic = f'<img src="{uri}" width="{w}" height="{h}" alt="{esc(row["id"])}">'
    else:
        pic = '<div class="noimg">no image</div>'
    meta = (f'<div class="meta">{esc(row["id"])}</div><div>{esc(row["width"])}&times;{esc(row["height"])} px, '
            f'language {esc(row.get("lang") or "-")}, look {esc(look(truth))}</div>')
    if note:
        meta += f'<div class="warn">{esc(note)}</div>'
    recs = []
    for rec in row.get("records") or []:
        target = rec["target"]
        cut = ""
        if len(target) > max_chars:
            cut = f"\n… ({len(target) - max_chars} more characters)"
            target = target[:max_chars]
        recs.append(f"<div>task <b>{esc(rec['task'])}</b>, prompt <code>{esc(rec['prompt'])}</code></div>"
                    f"<pre>{esc(target + cut)}</pre>")
    return f'<div class="row">{pic}<div>{meta}{"".join(recs)}</div></div>'


def build_report(location: str, rows_per_family: int = 6, thumb: int = 512, seed: int = 0,
                 max_target_chars: int = 1500, allow_incomplete: bool = False) -> str:
    """The report's HTML text (see the module docstring)."""
    stats = dataset_stats(location, allow_incomplete)
    _, manifest = list_shards(location, allow_incomplete)
    recipe = (manifest or {}).get("recipe") or {}
    ll = _looks_and_langs(location, allow_incomplete)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{esc(location)}: dataset report</title><style>{_STYLE}</style></head><body>",
             f"<h1>Dataset report: {esc(location)}</h1>",
             "<p>" + esc(f"{stats['shards']} shards, {stats['rows']} rows, complete={stats['complete']}")
             + (esc(f"; recipe {recipe.get('name')} (seed {recipe.get('seed')}), code "
                    f"{(manifest or {}).get('code_version')}") if recipe else "") + "</p>"]
    parts.append("<h2>Families</h2>")
    parts.append(_table(["family", "rows", "share", "looks", "languages"],
                        [[f, v["rows"], f"{100 * v['share']:.1f}%", _counts(ll.get(f, {}).get("look", {})),
                          _counts(ll.get(f, {}).get("lang", {}))] for f, v in stats["families"].items()], {1, 2}))
    parts.append("<h2>Tasks</h2>")
    parts.append(_table(["task", "records", "target characters"],
                        [[t, v["records"], show_summary(v["target_chars"])] for t, v in stats["tasks"].items()], {1}))
    if stats["region_labels"]:
        parts.append("<h2>Region labels</h2>")
        parts.append(_table(["family", "regions per label"],
                            [[f, _counts(c)] for f, c in stats["region_labels"].items()]))
    parts.append("<h2>Images</h2>")
    parts.append(_table(["", "min / median / max"], [[k.replace("_", " "), show_summary(stats[k])]
                                                     for k in ("image_width", "image_height", "image_bytes")]))
    if stats["ocr1_pages"]:
        parts.append("<h2>OCR 1.0 pages</h2>")
        parts.append(_table(["feature", "pages per value"],
                            [[k, _counts(v) if isinstance(v, dict) else v] for k, v in stats["ocr1_pages"].items()]))
    groups = positions_by_family(location, allow_incomplete)
    parts.append("<h2>Samples</h2><p>" + esc(f"Up to {rows_per_family} rows per family, drawn with seed {seed}; "
                                              "boxes and labels drawn as annotate show draws them.") + "</p>")
    for fam in sorted(groups):
        chosen = choose(groups[fam], rows_per_family, seed=seed)
        parts.append(f'<h3 id="{esc(fam)}">{esc(fam)} ({len(chosen)} of {len(groups[fam])} rows)</h3>')
        parts += [_row_html(row, thumb, max_target_chars) for row in take_rows(location, chosen, allow_incomplete)]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(location: str, out: str | Path, **kw: Any) -> int:
    """Write :func:`build_report`'s page to ``out``; returns its size in bytes."""
    data = build_report(location, **kw).encode("utf-8")
    Path(out).write_bytes(data)
    return len(data)
