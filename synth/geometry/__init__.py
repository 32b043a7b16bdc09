"""Plane-geometry figures for the Slow Perception target (family "geometry").

``generate(config, rng)`` builds a random construction (synth.geometry.construct), moves
it into the figure frame (centred on its bounding box, y up, scaled to a random extent,
coordinates rounded to 2 decimals), merges collinear segments, places point labels off
the lines, and draws it (synth.geometry.draw) on a ~270 px canvas whose full width spans
``window`` figure units. Translation augmentation draws the figure at a random pixel
offset from the canvas centre; the figure frame, hence the target, does not change.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, fields

import numpy as np

from formats.slow_perception import FRAME, Circle, Figure, Point, Segment, figure_to_truth, merge_segments, rnd, rnd_xy
from synth.config_checks import bad_probability
from synth.geometry.construct import BUILDERS, Builder
from synth.geometry.draw import Style, Transform, content_bbox, draw_figure, label_box_px, place_labels
from synth.sample import Sample


@dataclass
class Config:
    """Recipe options of the geometry family.

    constructions: relative weights of the construction kinds (triangle, quadrilateral,
      polygon, circle).
    size_min, size_max: side of the square image in pixels, drawn uniformly (inclusive).
    window: figure units that the image width spans (scale = size / window px per unit).
    extent_min, extent_max: the larger side of the figure's bounding box, figure units.
    shift_prob: probability that the figure is drawn off-centre (translation augmentation).
    dashed_fraction: about this share of all lines is dashed (auxiliary lines more often).
    line_width_min, line_width_max: line width in pixels.
    font_px_min, font_px_max: label font size in pixels (STIX, Times-like).
    italic_prob: probability that a figure's labels are italic.
    dot_prob: probability that a figure marks its labelled points with dots.
    supersample: drawing supersampling factor (anti-aliasing quality).
    image_format: "png" or "jpeg".
    jpeg_quality: JPEG quality when image_format is "jpeg".
    max_attempts: constructions tried before giving up on a degenerate draw.
    """

    constructions: dict[str, float] = field(
        default_factory=lambda: {"triangle": 0.35, "quadrilateral": 0.25, "polygon": 0.15, "circle": 0.25}
    )
    size_min: int = 256
    size_max: int = 288
    window: float = 30.0
    extent_min: float = 10.0
    extent_max: float = 20.0
    shift_prob: float = 0.8
    dashed_fraction: float = 0.2
    line_width_min: float = 0.9
    line_width_max: float = 1.5
    font_px_min: int = 12
    font_px_max: int = 16
    italic_prob: float = 0.5
    dot_prob: float = 0.5
    supersample: int = 3
    image_format: str = "png"
    jpeg_quality: int = 90
    max_attempts: int = 100

    def __post_init__(self) -> None:
        validate(self)  # a recipe with a bad value fails when it is loaded, not mid-shard


def validate(cfg: Config) -> None:
    """Raise ValueError naming the first invalid field, its value and what is valid."""
    unknown = set(cfg.constructions) - set(BUILDERS)
    if unknown or not cfg.constructions or any(w < 0 for w in cfg.constructions.values()) \
            or sum(cfg.constructions.values()) <= 0:
        raise ValueError(f"constructions={cfg.constructions!r}: need non-negative weights with a positive sum "
                         f"over {sorted(BUILDERS)}")
    if not 64 <= cfg.size_min <= cfg.size_max:
        raise ValueError(f"size_min={cfg.size_min}, size_max={cfg.size_max}: need 64 <= size_min <= size_max")
    if not 0 < cfg.extent_min <= cfg.extent_max <= 2 * FRAME - 6:
        raise ValueError(f"extent_min={cfg.extent_min}, extent_max={cfg.extent_max}: need "
                         f"0 < extent_min <= extent_max <= {2 * FRAME - 6} (room for labels inside -15..15)")
    if cfg.window < cfg.extent_max + 6:
        raise ValueError(f"window={cfg.window}: must be at least extent_max + 6 = {cfg.extent_max + 6} so labels fit")
    name = bad_probability(cfg, also=("dashed_fraction",))
    if name:
        raise ValueError(f"{name}={getattr(cfg, name)}: must be a probability in [0, 1]")
    if not 0 < cfg.line_width_min <= cfg.line_width_max:
        raise ValueError(f"line_width_min={cfg.line_width_min}, line_width_max={cfg.line_width_max}: need 0 < min <= max")
    if not 4 <= cfg.font_px_min <= cfg.font_px_max:
        raise ValueError(f"font_px_min={cfg.font_px_min}, font_px_max={cfg.font_px_max}: need 4 <= min <= max")
    if not 1 <= cfg.supersample <= 8:
        raise ValueError(f"supersample={cfg.supersample}: must be 1..8")
    if cfg.image_format not in ("png", "jpeg"):
        raise ValueError(f"image_format={cfg.image_format!r}: valid values are 'png' and 'jpeg'")
    if not 1 <= cfg.jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality={cfg.jpeg_quality}: must be 1..100")
    if cfg.max_attempts < 1:
        raise ValueError(f"max_attempts={cfg.max_attempts}: must be >= 1")


def _as_config(config: Config | dict | None) -> Config:
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    known = {f.name for f in fields(Config)}
    bad = set(config) - known
    if bad:
        raise ValueError(f"unknown geometry config keys {sorted(bad)}; valid keys: {sorted(known)}")
    return Config(**config)


def to_frame(b: Builder, extent: float) -> Figure | None:
    """Centre and scale a construction into the figure frame; None if it is degenerate.

    Degenerate: labelled points closer than 4% of the extent, segments shorter than 6%,
    circles smaller than 8%, or a labelled point almost (but not) on a segment.
    """
    names = sorted(b.xy)
    xs = [b.xy[n][0] for n in names]
    ys = [b.xy[n][1] for n in names]
    for cn, r in b.circles:
        c = b.xy[cn]
        xs += [c[0] - r, c[0] + r]
        ys += [c[1] - r, c[1] + r]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    size = max(x1 - x0, y1 - y0)
    if size <= 0:
        return None
    k = extent / size
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    xy = {n: rnd_xy(((b.xy[n][0] - cx) * k, (b.xy[n][1] - cy) * k)) for n in names}

    for i, n in enumerate(names):
        for m in names[i + 1:]:
            if math.dist(xy[n], xy[m]) < 0.04 * extent:
                return None
    raw = [Segment(*sorted((xy[a], xy[c])), dashed) for a, c, dashed in b.segments]
    if any(s.length < 0.06 * extent for s in raw):
        return None
    circles = []
    for cn, r in b.circles:
        if r * k < 0.08 * extent:
            return None
        circles.append(Circle(xy[cn], rnd(r * k), cn))
    for n in names:
        for s in raw:
            d = _point_seg_dist(xy[n], s)
            if 0.03 < d < 0.03 * extent:
                return None
    segments = merge_segments(raw)
    circles.sort(key=lambda c: (c.label, c.center))
    points = tuple(Point(n, xy[n]) for n in names)
    return Figure(tuple(segments), tuple(circles), points)


def _point_seg_dist(p, s: Segment) -> float:
    (x0, y0), (x1, y1) = s.start, s.end
    dx, dy = x1 - x0, y1 - y0
    t = max(0.0, min(1.0, ((p[0] - x0) * dx + (p[1] - y0) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p[0] - x0 - t * dx, p[1] - y0 - t * dy)


def _construct(cfg: Config, rng: np.random.Generator) -> tuple[str, Figure]:
    kinds = sorted(cfg.constructions)
    w = np.array([cfg.constructions[k] for k in kinds], dtype=float)
    # Main edges are dashed rarely, auxiliary lines often, about dashed_fraction overall.
    f = cfg.dashed_fraction
    for _ in range(cfg.max_attempts):
        kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
        b = Builder(rng, dashed_main=0.4 * f, dashed_aux=min(1.0, 3.0 * f))
        BUILDERS[kind](b)
        fig = to_frame(b, float(rng.uniform(cfg.extent_min, cfg.extent_max)))
        if fig is not None:
            return kind, fig
    raise RuntimeError(f"no valid construction in max_attempts={cfg.max_attempts} tries; raise max_attempts")


def _encode(img, cfg: Config) -> bytes:
    buf = io.BytesIO()
    if cfg.image_format == "png":
        img.save(buf, format="PNG", compress_level=6, optimize=False)
    else:
        img.save(buf, format="JPEG", quality=cfg.jpeg_quality, optimize=False, progressive=False, subsampling=0)
    return buf.getvalue()


def generate(config: Config | dict | None, rng: np.random.Generator) -> Sample:
    """Draw one random geometry figure; its truth holds the primitives and the transform."""
    cfg = _as_config(config)
    kind, fig = _construct(cfg, rng)
    size = int(rng.integers(cfg.size_min, cfg.size_max + 1))
    scale = size / cfg.window
    style = Style(
        line_width=round(float(rng.uniform(cfg.line_width_min, cfg.line_width_max)), 2),
        font_px=int(rng.integers(cfg.font_px_min, cfg.font_px_max + 1)),
        italic=bool(rng.random() < cfg.italic_prob),
        dot_radius=1.6 if rng.random() < cfg.dot_prob else 0.0,
        supersample=cfg.supersample,
    )
    labels = place_labels(fig, style, scale)
    x0, y0, x1, y1 = content_bbox(fig, labels, style, scale)
    # Integer pixel offsets keep "undo the shift" exact; the drawn content stays 4 px inside.
    margin = 4
    lo_x = math.ceil(margin - (size / 2 + scale * x0))
    hi_x = math.floor(size - margin - (size / 2 + scale * x1))
    lo_y = math.ceil(margin - (size / 2 - scale * y1))
    hi_y = math.floor(size - margin - (size / 2 - scale * y0))
    dx = dy = 0
    if rng.random() < cfg.shift_prob:
        dx = int(rng.integers(min(lo_x, 0), max(hi_x, 0) + 1))
        dy = int(rng.integers(min(lo_y, 0), max(hi_y, 0) + 1))
    tf = Transform(scale, (size / 2 + dx, size / 2 + dy))
    img = draw_figure(fig, (size, size), tf, style, labels)

    truth = figure_to_truth(fig)
    for p in truth["points"]:
        c = labels[p["name"]]
        p["label_center"] = [round(c[0], 4), round(c[1], 4)]
        p["label_box_px"] = [round(v, 2) for v in label_box_px(p["name"], c, style, tf)]
    truth["transform"] = {"scale": scale, "origin": list(tf.origin), "offset": [dx, dy]}
    truth["style"] = style.to_dict()
    truth["construction"] = kind
    return Sample(
        family="geometry",
        image=_encode(img, cfg),
        image_format=cfg.image_format,
        width=size,
        height=size,
        truth=truth,
        lang="en",
    )
