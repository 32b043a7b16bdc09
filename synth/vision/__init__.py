"""General-vision family: synthetic scenes of shapes, icons and words, with grounding truth.

A scene is a background (plain, gradient or noise) with several objects drawn one over
the other. Each object is drawn from a binary mask (pasted in one named colour), and an
owner map records which object a pixel finally shows, so boxes come from each object's
*visible* pixels. An object is only placed if every earlier object keeps at least
``min_visible`` of its area, so every object can be grounded.

Truth: the background, the objects (kind, colour, size class, word, visible box,
visible fraction), the chosen referring queries with the objects they match, and a
templated caption. ``annotate.vision`` turns these into records.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from formats.bins import box_to_bins
from synth import text_sources
from synth.config_checks import bad_probability
from synth.sample import Region, Sample

JPEG_QUALITY = 90

# Named colours a caption can state without ambiguity (mutually distinct hues/lightness).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 215, 20),
    "orange": (245, 135, 15),
    "purple": (130, 40, 170),
    "pink": (245, 120, 190),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
    "gray": (128, 128, 128),
    "cyan": (20, 200, 220),
}

SIZES: dict[str, tuple[float, float]] = {  # size class -> object extent as a fraction of min(W, H)
    "small": (0.08, 0.13),
    "medium": (0.16, 0.23),
    "large": (0.27, 0.36),
}

_MIN_CONTRAST = 110.0  # RGB distance an object colour needs from the background


@dataclass
class Config:
    """Options of the general-vision family.

    min_size: smallest image side in pixels.
    max_size: largest image side in pixels (width and height drawn independently).
    min_objects: fewest objects a scene tries to place.
    max_objects: most objects a scene tries to place.
    min_visible: least fraction of an object's area that must stay visible under later objects.
    placement_attempts: positions tried per object before the object is dropped.
    word_prob: probability that an object is a word rather than a shape or icon.
    icon_prob: probability that a non-word object is an icon rather than a geometric shape.
    background_weights: relative weights of background styles "plain", "gradient", "noise".
    dark_background_prob: probability of a dark background (otherwise light).
    max_queries: most grounding queries per scene (at least one is always made).
    relation_prob: probability of one more query relating two objects ("the circle left
      of the red star"): the anchor is the only object of its kind and colour, and the
      target lists every object of the named kind whose box centre lies wholly beyond the
      anchor's box on that side (see :func:`relation_holds`).
    negative_prob: probability of one more query for something the scene does not hold (a
      shape or icon kind in a colour no object has): its target lists no box, so a model
      learns to answer an absent object with an empty list instead of a guess.
    word_tilt_prob: probability that a word is drawn tilted, by up to ``max_word_tilt``
      degrees either way, as text in scenes often is (its box bounds the tilted pixels).
    max_word_tilt: largest tilt of a word in degrees (0-60).
    jpeg_quality: JPEG quality of the stored image (1-95).
    """

    min_size: int = 320
    max_size: int = 640
    min_objects: int = 2
    max_objects: int = 7
    min_visible: float = 0.4
    placement_attempts: int = 6
    word_prob: float = 0.15
    icon_prob: float = 0.45
    background_weights: dict[str, float] = field(
        default_factory=lambda: {"plain": 0.4, "gradient": 0.35, "noise": 0.25}
    )
    dark_background_prob: float = 0.2
    max_queries: int = 3
    relation_prob: float = 0.3
    negative_prob: float = 0.2
    word_tilt_prob: float = 0.3
    max_word_tilt: float = 35.0
    jpeg_quality: int = JPEG_QUALITY

    def __post_init__(self) -> None:
        # Fail when a recipe is loaded, not in the middle of a shard.
        _validate(self)


_BACKGROUNDS = ("plain", "gradient", "noise")


def _validate(cfg: Config) -> dict[str, float]:
    if not 64 <= cfg.min_size <= cfg.max_size:
        raise ValueError(f"vision sizes: need 64 <= min_size <= max_size, got {cfg.min_size}, {cfg.max_size}")
    if not 1 <= cfg.min_objects <= cfg.max_objects:
        raise ValueError(f"vision objects: need 1 <= min_objects <= max_objects, got {cfg.min_objects}, {cfg.max_objects}")
    if not 0.0 < cfg.min_visible <= 1.0:
        raise ValueError(f"vision min_visible={cfg.min_visible!r}: must be in (0, 1]")
    name = bad_probability(cfg)
    if name:
        raise ValueError(f"vision {name}={getattr(cfg, name)!r}: must be a probability in [0, 1]")
    if cfg.max_queries < 1 or cfg.placement_attempts < 1:
        raise ValueError(f"vision max_queries={cfg.max_queries}, placement_attempts={cfg.placement_attempts}: both must be >= 1")
    if not 1 <= cfg.jpeg_quality <= 95:
        raise ValueError(f"vision jpeg_quality={cfg.jpeg_quality}: must be in 1..95")
    if not 0 <= cfg.max_word_tilt <= 60:
        raise ValueError(f"vision max_word_tilt={cfg.max_word_tilt}: must be in 0..60 degrees")
    weights = cfg.background_weights
    unknown = set(weights) - set(_BACKGROUNDS)
    if unknown or sum(weights.values()) <= 0 or min(weights.values()) < 0:
        raise ValueError(
            f"vision background_weights={weights!r}: keys must be among {_BACKGROUNDS} with non-negative "
            "weights summing above 0"
        )
    return weights


# ---------------------------------------------------------------- masks of shapes and icons
# Each drawer paints value 255 into an "L" image of size (w, h) that it fills edge to edge.

MaskDrawer = Callable[[ImageDraw.ImageDraw, int, int], None]


def _circle(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.ellipse((0, 0, w - 1, h - 1), fill=255)


def _rect(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.rectangle((0, 0, w - 1, h - 1), fill=255)


def _poly(unit: list[tuple[float, float]]) -> MaskDrawer:
    def draw(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
        d.polygon([(x * (w - 1), y * (h - 1)) for x, y in unit], fill=255)

    return draw


def _star_points(n: int = 5, inner: float = 0.42) -> list[tuple[float, float]]:
    pts = []
    for i in range(2 * n):
        r = 0.5 if i % 2 == 0 else 0.5 * inner
        a = -math.pi / 2 + i * math.pi / n
        pts.append((0.5 + r * math.cos(a), 0.5 + r * math.sin(a)))
    return pts


def _regular(n: int) -> list[tuple[float, float]]:
    return [(0.5 + 0.5 * math.cos(2 * math.pi * i / n), 0.5 + 0.5 * math.sin(2 * math.pi * i / n)) for i in range(n)]


def _heart(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.ellipse((0, 0, w * 0.55, h * 0.55), fill=255)
    d.ellipse((w * 0.45 - 1, 0, w - 1, h * 0.55), fill=255)
    d.polygon([(w * 0.02, h * 0.36), (w * 0.98, h * 0.36), (w * 0.5, h - 1)], fill=255)


def _house(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.polygon([(0, h * 0.45), (w * 0.5, 0), (w - 1, h * 0.45)], fill=255)
    d.rectangle((w * 0.12, h * 0.44, w * 0.88, h - 1), fill=255)
    d.rectangle((w * 0.7, h * 0.08, w * 0.8, h * 0.35), fill=255)  # chimney
    d.rectangle((w * 0.42, h * 0.68, w * 0.58, h - 1), fill=0)  # door opening


def _tree(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.rectangle((w * 0.42, h * 0.55, w * 0.58, h - 1), fill=255)
    d.ellipse((0, 0, w - 1, h * 0.7), fill=255)


def _pine(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.rectangle((w * 0.42, h * 0.8, w * 0.58, h - 1), fill=255)
    d.polygon([(w * 0.5, 0), (w * 0.15, h * 0.45), (w * 0.85, h * 0.45)], fill=255)
    d.polygon([(w * 0.5, h * 0.2), (0, h * 0.82), (w - 1, h * 0.82)], fill=255)


def _car(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.rounded_rectangle((0, h * 0.35, w - 1, h * 0.8), radius=max(1, int(h * 0.12)), fill=255)
    d.polygon([(w * 0.2, h * 0.38), (w * 0.32, 0), (w * 0.7, 0), (w * 0.82, h * 0.38)], fill=255)
    d.polygon([(w * 0.3, h * 0.35), (w * 0.37, h * 0.1), (w * 0.49, h * 0.1), (w * 0.49, h * 0.35)], fill=0)
    d.polygon([(w * 0.53, h * 0.35), (w * 0.53, h * 0.1), (w * 0.65, h * 0.1), (w * 0.73, h * 0.35)], fill=0)
    for cx in (0.24, 0.76):
        d.ellipse((w * cx - h * 0.2, h * 0.6, w * cx + h * 0.2, h - 1), fill=255)


def _sun(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.ellipse((w * 0.25, h * 0.25, w * 0.75, h * 0.75), fill=255)
    lw = max(2, int(min(w, h) * 0.06))
    for i in range(8):
        a = i * math.pi / 4
        x1, y1 = 0.5 + 0.33 * math.cos(a), 0.5 + 0.33 * math.sin(a)
        x2, y2 = 0.5 + 0.49 * math.cos(a), 0.5 + 0.49 * math.sin(a)
        d.line((x1 * (w - 1), y1 * (h - 1), x2 * (w - 1), y2 * (h - 1)), fill=255, width=lw)


def _cup(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    lw = max(2, int(w * 0.09))
    d.ellipse((w * 0.55, h * 0.2, w - 1, h * 0.7), outline=255, width=lw)  # handle
    d.polygon([(0, 0), (w * 0.75, 0), (w * 0.66, h - 1), (w * 0.09, h - 1)], fill=255)


def _moon(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.ellipse((0, 0, w - 1, h - 1), fill=255)
    d.ellipse((w * 0.3, -h * 0.08, w * 1.25, h * 0.92), fill=0)


def _cloud(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.ellipse((0, h * 0.35, w * 0.45, h - 1), fill=255)
    d.ellipse((w * 0.2, 0, w * 0.7, h * 0.8), fill=255)
    d.ellipse((w * 0.5, h * 0.25, w - 1, h - 1), fill=255)
    d.rectangle((w * 0.2, h * 0.6, w * 0.8, h - 1), fill=255)


def _flag(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.rectangle((0, 0, max(1, w * 0.1), h - 1), fill=255)
    d.polygon([(w * 0.1, 0), (w - 1, h * 0.22), (w * 0.1, h * 0.45)], fill=255)


def _fish(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.ellipse((w * 0.22, 0, w - 1, h - 1), fill=255)
    d.polygon([(0, 0), (w * 0.32, h * 0.5), (0, h - 1)], fill=255)
    r = max(1.0, h * 0.08)
    d.ellipse((w * 0.78 - r, h * 0.38 - r, w * 0.78 + r, h * 0.38 + r), fill=0)  # eye


def _mushroom(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.pieslice((0, 0, w - 1, h * 1.1), 180, 360, fill=255)
    d.rounded_rectangle((w * 0.35, h * 0.5, w * 0.65, h - 1), radius=max(1, int(w * 0.08)), fill=255)


def _umbrella(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
    d.pieslice((0, 0, w - 1, h * 0.9), 180, 360, fill=255)
    lw = max(2, int(w * 0.06))
    d.line((w * 0.5, h * 0.4, w * 0.5, h * 0.92), fill=255, width=lw)
    d.arc((w * 0.3, h * 0.78, w * 0.52, h - 1), 0, 180, fill=255, width=lw)


# kind -> (drawer, aspect range w/h, rotatable)
SHAPES: dict[str, tuple[MaskDrawer, tuple[float, float], bool]] = {
    "circle": (_circle, (1.0, 1.0), False),
    "ellipse": (_circle, (1.5, 2.2), True),
    "square": (_rect, (1.0, 1.0), True),
    "rectangle": (_rect, (1.5, 2.4), True),
    "triangle": (_poly([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)]), (1.0, 1.2), True),
    "diamond": (_poly([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)]), (0.7, 1.0), False),
    "star": (_poly(_star_points()), (1.0, 1.0), True),
    "hexagon": (_poly(_regular(6)), (1.0, 1.0), True),
    "cross": (_poly([(0.35, 0), (0.65, 0), (0.65, 0.35), (1, 0.35), (1, 0.65), (0.65, 0.65), (0.65, 1),
                     (0.35, 1), (0.35, 0.65), (0, 0.65), (0, 0.35), (0.35, 0.35)]), (1.0, 1.0), True),
    "arrow": (_poly([(0, 0.35), (0.6, 0.35), (0.6, 0.1), (1, 0.5), (0.6, 0.9), (0.6, 0.65), (0, 0.65)]), (1.6, 2.2), True),
    "heart": (_heart, (1.0, 1.1), False),
}

ICONS: dict[str, tuple[MaskDrawer, tuple[float, float], bool]] = {
    "house": (_house, (0.9, 1.1), False),
    "tree": (_tree, (0.7, 0.8), False),
    "pine tree": (_pine, (0.6, 0.75), False),
    "car": (_car, (1.8, 2.2), False),
    "sun": (_sun, (1.0, 1.0), False),
    "cup": (_cup, (1.0, 1.15), False),
    "moon": (_moon, (0.8, 0.9), False),
    "cloud": (_cloud, (1.5, 1.9), False),
    "flag": (_flag, (0.7, 0.8), False),
    "fish": (_fish, (1.7, 2.1), False),
    "mushroom": (_mushroom, (1.0, 1.2), False),
    "umbrella": (_umbrella, (1.0, 1.1), False),
}

WORD = "word"


def _shape_mask(kind: str, extent: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of a shape or icon whose longer side is about ``extent`` pixels."""
    drawer, (a_lo, a_hi), rotatable = SHAPES.get(kind) or ICONS[kind]
    aspect = float(rng.uniform(a_lo, a_hi))
    w = max(6, int(round(extent if aspect >= 1 else extent * aspect)))
    h = max(6, int(round(extent / aspect if aspect >= 1 else extent)))
    img = Image.new("L", (w, h), 0)
    drawer(ImageDraw.Draw(img), w, h)
    angle = float(rng.uniform(-35.0, 35.0)) if rotatable and rng.random() < 0.5 else 0.0
    if angle:
        img = img.rotate(angle, resample=Image.Resampling.NEAREST, expand=True, fillcolor=0)
    return np.asarray(img) >= 128


@functools.lru_cache(maxsize=None)
def _font_path(name: str) -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", name)


_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf")


@functools.lru_cache(maxsize=256)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(_font_path(name), size)


@functools.lru_cache(maxsize=1)
def _label_words() -> tuple[str, ...]:
    """Corpus words fit to be a visible label: 4-10 letters with a vowel (no 'bdb')."""
    return tuple(w for w in text_sources.english_words() if 4 <= len(w) <= 10 and any(v in w for v in "aeiou"))


def _word_mask(word: str, extent: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of a word whose glyph height is about a third of ``extent``."""
    size = max(10, int(extent * 0.45) // 2 * 2)  # even sizes keep the font cache small
    font = _font(_FONTS[int(rng.integers(len(_FONTS)))], size)
    x0, y0, x1, y1 = font.getbbox(word)
    img = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
    ImageDraw.Draw(img).text((-x0, -y0), word, font=font, fill=255)
    return np.asarray(img) >= 128


def _tilted(mask: np.ndarray, degrees: float) -> np.ndarray:
    """A mask turned counter-clockwise by ``degrees`` about its centre, grown to hold it."""
    img = Image.fromarray(mask.astype(np.uint8) * 255, "L").rotate(degrees, resample=Image.BILINEAR, expand=True)
    return np.asarray(img) >= 128


# ---------------------------------------------------------------- backgrounds

def _background(w: int, h: int, style: str, dark: bool, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """The background image and its mean colour (for contrast decisions)."""
    lo, hi = (0, 70) if dark else (185, 256)
    c1 = rng.integers(lo, hi, size=3)
    if style == "plain":
        return Image.new("RGB", (w, h), tuple(int(v) for v in c1)), c1.astype(float)
    if style == "gradient":
        c2 = rng.integers(lo, hi, size=3)
        t = np.linspace(0.0, 1.0, h if rng.random() < 0.5 else w, dtype=np.float32)
        ramp = (c1[None, :] * (1 - t[:, None]) + c2[None, :] * t[:, None]).astype(np.uint8)
        if len(t) == h:
            arr = np.broadcast_to(ramp[:, None, :], (h, w, 3))
        else:
            arr = np.broadcast_to(ramp[None, :, :], (h, w, 3))
        return Image.fromarray(np.ascontiguousarray(arr), "RGB"), (c1 + c2) / 2.0
    # Noise: coarse blotches upscaled smoothly, mostly in lightness so the hue stays calm.
    cw, ch = max(2, w // 24), max(2, h // 24)
    shade = rng.integers(-22, 23, size=(ch, cw, 1))
    tint = rng.integers(-5, 6, size=(ch, cw, 3))
    coarse = np.clip(c1[None, None, :] + shade + tint, lo, hi - 1).astype(np.uint8)
    img = Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BILINEAR)
    return img, c1.astype(float)


# ---------------------------------------------------------------- scene

@dataclass
class _Obj:
    kind: str
    colour: str
    size: str
    word: str
    x: int
    y: int
    mask: np.ndarray  # bool, local
    area: int
    tilt: float = 0.0  # a word's counter-clockwise tilt in degrees


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _new_object(cfg: Config, w: int, h: int, colours: list[str],
                rng: np.random.Generator) -> tuple[str, str, str, str, np.ndarray, float]:
    size = _pick(rng, list(SIZES))
    lo, hi = SIZES[size]
    extent = float(rng.uniform(lo, hi)) * min(w, h)
    colour = _pick(rng, colours)
    if rng.random() < cfg.word_prob:
        word = _pick(rng, _label_words())
        mask, tilt = _word_mask(word, extent, rng), 0.0
        # Switched off, the option draws nothing: such recipes keep their earlier bytes.
        if cfg.word_tilt_prob > 0 and rng.random() < cfg.word_tilt_prob:
            tilt = round(float(rng.uniform(-cfg.max_word_tilt, cfg.max_word_tilt)), 1)
            mask = _tilted(mask, tilt)
        return WORD, colour, size, word, mask, tilt
    kinds = list(ICONS) if rng.random() < cfg.icon_prob else list(SHAPES)
    kind = _pick(rng, kinds)
    return kind, colour, size, "", _shape_mask(kind, extent, rng), 0.0


def _place(owner: np.ndarray, visible: list[int], objs: list[_Obj], mask: np.ndarray, x: int, y: int,
           min_visible: float) -> bool:
    """Claim the mask's pixels at (x, y) unless that would hide too much of an earlier object."""
    mh, mw = mask.shape
    region = owner[y:y + mh, x:x + mw]
    covered = region[mask]
    if len(objs):
        lost = np.bincount(covered, minlength=len(objs) + 1)
        for i, o in enumerate(objs):
            if lost[i + 1] and visible[i] - lost[i + 1] < min_visible * o.area:
                return False
        for i in range(len(objs)):
            visible[i] -= int(lost[i + 1])
    region[mask] = len(objs) + 1
    return True


def _phrase(attrs: dict[str, str]) -> str:
    """The referring expression of an attribute set, e.g. 'the small red circle'."""
    parts = ["the"]
    if attrs.get("size"):
        parts.append(attrs["size"])
    if attrs.get("colour"):
        parts.append(attrs["colour"])
    parts.append(f'word "{attrs["word"]}"' if attrs["kind"] == WORD else attrs["kind"])
    return " ".join(parts)


def matches(obj: dict, attrs: dict[str, str]) -> bool:
    """True when a truth object has every attribute the query names."""
    return all(obj.get(k) == v for k, v in attrs.items())


_POS_NAMES = (("top left", "top", "top right"), ("left", "centre", "right"), ("bottom left", "bottom", "bottom right"))
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def _position(box: tuple[int, int, int, int]) -> str:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return _POS_NAMES[min(2, int(cy / 333.4))][min(2, int(cx / 333.4))]


def _caption(objs: list[dict], background: str, rng: np.random.Generator) -> str:
    """A templated caption naming every object, its colour, size and position."""
    def noun(o: dict) -> str:
        if o["kind"] == WORD:
            return f'the word "{o["word"]}" in {o["colour"]}'
        article = "an" if o["size"][0] in "aeiou" else "a"
        return f"{article} {o['size']} {o['colour']} {o['kind']}"

    order = sorted(range(len(objs)), key=lambda i: (objs[i]["box"][1] // 200, objs[i]["box"][0]))
    items = [f"{noun(objs[i])} at the {_position(objs[i]['box'])}".replace("at the centre", "in the centre") for i in order]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    n = len(objs)
    count = f"{_NUMBERS[n] if n < len(_NUMBERS) else n} object{'s' if n != 1 else ''}"
    template = int(rng.integers(3))
    if template == 0:
        text = f"An image of {listed} on a {background} background."
    elif template == 1:
        text = f"There {'is' if n == 1 else 'are'} {count} on a {background} background: {listed}."
    else:
        text = f"A {background} background with {listed}."
    hidden = [objs[i] for i in order if objs[i]["visible"] < 0.9]
    if hidden:
        names = [f"the {o['colour']} {'word' if o['kind'] == WORD else o['kind']}" for o in hidden]
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        text += f" {joined[0].upper()}{joined[1:]} {'is' if len(names) == 1 else 'are'} partly covered."
    return text


def _queries(objs: list[dict], max_queries: int, rng: np.random.Generator) -> list[dict]:
    """Distinct referring queries (attribute subsets of real objects) and the objects they match."""
    cands: dict[str, dict[str, str]] = {}
    for o in objs:
        base = {"kind": o["kind"]}
        if o["kind"] == WORD:
            base["word"] = o["word"]
        for extra in ({}, {"colour": o["colour"]}, {"size": o["size"], "colour": o["colour"]}):
            attrs = {**base, **extra}
            cands.setdefault(_phrase(attrs), attrs)
    keys = list(cands)
    n = min(len(keys), int(rng.integers(1, max_queries + 1)))
    chosen = sorted(int(i) for i in rng.choice(len(keys), size=n, replace=False))
    out = []
    for i in chosen:
        attrs = cands[keys[i]]
        out.append({"ref": keys[i], "attrs": attrs, "objects": [j for j, o in enumerate(objs) if matches(o, attrs)]})
    return out


RELATIONS = ("left of", "right of", "above", "below")


def relation_holds(obj: dict, anchor: dict, relation: str) -> bool:
    """Whether ``obj``'s box centre lies beyond ``anchor``'s box on the relation's side
    (strictly past the anchor's edge, so objects overlapping it on that axis never count)."""
    ox, oy = (obj["box"][0] + obj["box"][2]) / 2, (obj["box"][1] + obj["box"][3]) / 2
    ax0, ay0, ax1, ay1 = anchor["box"]
    return {"left of": ox < ax0, "right of": ox > ax1, "above": oy < ay0, "below": oy > ay1}[relation]


def query_objects(objs: list[dict], query: dict) -> list[int]:
    """Indices of the objects a query denotes: attribute matches, then the relation to its
    anchor (the one object matching ``query["relation"]["anchor"]``) if it has one."""
    hits = [i for i, o in enumerate(objs) if matches(o, query["attrs"])]
    rel = query.get("relation")
    if rel is None:
        return hits
    anchors = [i for i, o in enumerate(objs) if matches(o, rel["anchor"])]
    if len(anchors) != 1:
        return []
    a = anchors[0]
    return [i for i in hits if i != a and relation_holds(objs[i], objs[a], rel["rel"])]


def _relation_query(objs: list[dict], rng: np.random.Generator) -> dict | None:
    """A query relating objects of one kind to a unique anchor, e.g. 'the circle left of
    the red star' (None when no such query denotes at least one object)."""
    cands = []
    for a, anchor in enumerate(objs):
        if anchor["kind"] == WORD:
            continue
        anchor_attrs = {"kind": anchor["kind"], "colour": anchor["colour"]}
        if sum(matches(o, anchor_attrs) for o in objs) != 1:
            continue
        for kind in sorted({o["kind"] for i, o in enumerate(objs) if i != a and o["kind"] != WORD}):
            for rel in RELATIONS:
                q = {"attrs": {"kind": kind}, "relation": {"rel": rel, "anchor": anchor_attrs}}
                found = query_objects(objs, q)
                if found:
                    q["ref"] = f"{_phrase(q['attrs'])} {rel} {_phrase(anchor_attrs)}"
                    q["objects"] = found
                    cands.append(q)
    if not cands:
        return None
    return cands[int(rng.integers(len(cands)))]


def _negative_query(objs: list[dict], colours: list[str], rng: np.random.Generator) -> dict | None:
    """A query for a shape or icon in a colour that no object of that kind has (None if
    every pair is taken); the colour is one that could have been drawn on this background."""
    kinds = list(SHAPES) + list(ICONS)
    free = [(k, c) for k in kinds for c in colours if not any(matches(o, {"kind": k, "colour": c}) for o in objs)]
    if not free:
        return None
    kind, colour = free[int(rng.integers(len(free)))]
    attrs = {"kind": kind, "colour": colour}
    return {"ref": _phrase(attrs), "attrs": attrs, "objects": []}


def _contrasting(bg: np.ndarray) -> list[str]:
    return [n for n, c in COLOURS.items() if float(np.linalg.norm(np.asarray(c, float) - bg)) >= _MIN_CONTRAST]


def generate(config: Config, rng: np.random.Generator) -> Sample:
    """Generate one scene with its objects' visible boxes, queries and caption."""
    weights = _validate(config)
    w = int(rng.integers(config.min_size, config.max_size + 1))
    h = int(rng.integers(config.min_size, config.max_size + 1))
    styles = [s for s in _BACKGROUNDS if weights.get(s, 0) > 0]
    p = np.asarray([weights[s] for s in styles], float)
    style = styles[int(rng.choice(len(styles), p=p / p.sum()))]
    dark = bool(rng.random() < config.dark_background_prob)
    canvas, bg_mean = _background(w, h, style, dark, rng)
    colours = _contrasting(bg_mean)

    owner = np.zeros((h, w), dtype=np.int16)
    objs: list[_Obj] = []
    visible: list[int] = []
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        kind, colour, size, word, mask, tilt = _new_object(config, w, h, colours, rng)
        mh, mw = mask.shape
        area = int(mask.sum())
        if mh >= h or mw >= w or area == 0:
            continue
        for _attempt in range(config.placement_attempts):
            x, y = int(rng.integers(0, w - mw)), int(rng.integers(0, h - mh))
            if _place(owner, visible, objs, mask, x, y, config.min_visible):
                objs.append(_Obj(kind, colour, size, word, x, y, mask, area, tilt))
                visible.append(area)
                canvas.paste(COLOURS[colour], (x, y), Image.fromarray(mask.astype(np.uint8) * 255, "L"))
                break

    truth_objs, regions = [], []
    for i, o in enumerate(objs):
        mh, mw = o.mask.shape
        ys, xs = np.nonzero(owner[o.y:o.y + mh, o.x:o.x + mw] == i + 1)
        box = box_to_bins((o.x + xs.min(), o.y + ys.min(), o.x + xs.max() + 1, o.y + ys.max() + 1), w, h)
        entry = {"kind": o.kind, "colour": o.colour, "size": o.size, "word": o.word, "box": list(box),
                 "visible": round(visible[i] / o.area, 3), **({"tilt": o.tilt} if o.kind == WORD else {})}
        truth_objs.append(entry)
        attrs = {"kind": o.kind, "colour": o.colour, **({"word": o.word} if o.kind == WORD else {})}
        regions.append(Region(label=_phrase(attrs), box=box, text=o.word))

    background = ("dark " if dark else "light ") + {"plain": "plain", "gradient": "gradient", "noise": "textured"}[style]
    queries = _queries(truth_objs, config.max_queries, rng) if truth_objs else []
    # Switched off, an option draws nothing: such recipes keep their earlier bytes.
    if config.relation_prob > 0 and rng.random() < config.relation_prob:
        rel = _relation_query(truth_objs, rng)
        if rel is not None and rel["ref"] not in {q["ref"] for q in queries}:
            queries.append(rel)
    if config.negative_prob > 0 and rng.random() < config.negative_prob:
        neg = _negative_query(truth_objs, colours, rng)
        if neg is not None:
            queries.append(neg)
    truth = {
        "background": background,
        "objects": truth_objs,
        "queries": queries,
        "caption": _caption(truth_objs, background, rng) if truth_objs else f"An empty {background} background.",
    }
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=config.jpeg_quality, optimize=False, progressive=False, subsampling=0)
    words = " ".join(o.word for o in objs if o.word)
    return Sample(family="vision", image=out.getvalue(), image_format="jpeg", width=w, height=h,
                  regions=regions, text=words, truth=truth)
