"""Display equations: a finite pool of LaTeX strings rendered with matplotlib mathtext.

Pool entry *i* (of the recipe's ``equation_pool``) is one of 40 classic equations for
i < 40, and for larger i the random equation of ``equation_grammar`` seeded from i, so
it is the same equation in every process. The pool is finite on purpose: each equation is
rasterised once per node (about 5 ms), kept in the node's cache (``synth.cache``) and
read from it afterwards. Every
string is in the LaTeX subset that mathtext parses, so the annotation
(``\\[ latex \\]``) is exactly what was drawn.
"""

from __future__ import annotations

import functools

import numpy as np

# Rendering resolution: 3x the 72 dpi PDF unit keeps edges crisp at 1024-1600 px pages.
_DPI = 216
_FONT_PT = 12.0
_POOL_SEED = 0x45514E  # seeds grammar entries apart from every recipe's row seeds

POOL: tuple[str, ...] = (
    r"E = mc^{2}",
    r"a^{2} + b^{2} = c^{2}",
    r"x = \frac{-b \pm \sqrt{b^{2} - 4ac}}{2a}",
    r"\sum_{i=1}^{n} i = \frac{n(n+1)}{2}",
    r"\int_{0}^{\infty} e^{-x^{2}} dx = \frac{\sqrt{\pi}}{2}",
    r"f(x) = \sum_{k=0}^{\infty} \frac{f^{(k)}(a)}{k!} (x-a)^{k}",
    r"e^{i\pi} + 1 = 0",
    r"\nabla \cdot \mathbf{E} = \frac{\rho}{\epsilon_{0}}",
    r"\mathcal{L}(\theta) = -\sum_{i=1}^{N} \log p_{\theta}(y_{i} | x_{i})",
    r"\sigma(z) = \frac{1}{1 + e^{-z}}",
    r"\mathrm{softmax}(z)_{j} = \frac{e^{z_{j}}}{\sum_{k} e^{z_{k}}}",
    r"\hat{y} = W x + b",
    r"\frac{\partial u}{\partial t} = \alpha \frac{\partial^{2} u}{\partial x^{2}}",
    r"\lim_{n \to \infty} \left(1 + \frac{1}{n}\right)^{n} = e",
    r"P(A | B) = \frac{P(B | A) P(A)}{P(B)}",
    r"\mu = \frac{1}{N} \sum_{i=1}^{N} x_{i}",
    r"\sigma^{2} = \frac{1}{N} \sum_{i=1}^{N} (x_{i} - \mu)^{2}",
    r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\left(\frac{Q K^{T}}{\sqrt{d_{k}}}\right) V",
    r"\theta_{t+1} = \theta_{t} - \eta \nabla_{\theta} J(\theta_{t})",
    r"\oint_{C} \mathbf{F} \cdot d\mathbf{r} = \iint_{S} (\nabla \times \mathbf{F}) \cdot d\mathbf{S}",
    r"\binom{n}{k} = \frac{n!}{k!(n-k)!}",
    r"\sin^{2} \alpha + \cos^{2} \alpha = 1",
    r"\prod_{p} \frac{1}{1 - p^{-s}} = \sum_{n=1}^{\infty} \frac{1}{n^{s}}",
    r"F = G \frac{m_{1} m_{2}}{r^{2}}",
    r"\Delta x \, \Delta p \geq \frac{\hbar}{2}",
    r"H(X) = -\sum_{x} p(x) \log_{2} p(x)",
    r"D_{KL}(P \| Q) = \sum_{x} P(x) \log \frac{P(x)}{Q(x)}",
    r"y = \beta_{0} + \beta_{1} x + \varepsilon",
    r"\det(A - \lambda I) = 0",
    r"\|x\|_{2} = \sqrt{\sum_{i} x_{i}^{2}}",
    r"\frac{d}{dx} \ln x = \frac{1}{x}",
    r"\int_{a}^{b} f'(x) dx = f(b) - f(a)",
    r"\zeta(2) = \sum_{n=1}^{\infty} \frac{1}{n^{2}} = \frac{\pi^{2}}{6}",
    r"i \hbar \frac{\partial \psi}{\partial t} = \hat{H} \psi",
    r"R_{\mu\nu} - \frac{1}{2} R g_{\mu\nu} = 8 \pi G T_{\mu\nu}",
    r"\mathbf{x}_{t} = \sqrt{\bar{\alpha}_{t}} \mathbf{x}_{0} + \sqrt{1 - \bar{\alpha}_{t}} \epsilon",
    r"\cos(\alpha + \beta) = \cos\alpha \cos\beta - \sin\alpha \sin\beta",
    r"A = \pi r^{2}",
    r"v = \frac{\Delta s}{\Delta t}",
    r"\mathrm{PPL} = \exp\left(-\frac{1}{N} \sum_{i} \log p(w_{i})\right)",
)


FONTSETS = ("dejavusans", "dejavuserif", "stix", "cm")


def render(latex: str, fontset: str = "dejavusans"):
    """The equation's image cropped to its ink, as (PIL RGB image, width_pt, height_pt) at 12 pt,
    set in one of mathtext's ``FONTSETS`` (whatever the user's matplotlibrc says).

    Cached per process; raises ValueError naming the string when mathtext rejects it.
    """
    return rasterize(latex, fontset)[:3]


# In-process bounds: the pools are finite, but a recipe may ask for 100,000 entries.
_MEMO = 4096
# Bump when _raster_arrays's output changes: the node cache then renders again.
_BUILD_VERSION = 2


def _raster_arrays(latex: str, fontset: str) -> dict[str, np.ndarray]:
    """mathtext's coverage raster of ``latex`` cropped to its ink, as grey levels, and
    (width_pt, height_pt, descent_pt) at 12 pt (see :func:`rasterize`)."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    # The fontset goes in the FontProperties, where mathtext takes it from (the default
    # comes from rcParams, which a user's matplotlibrc may change); antialiasing likewise.
    prop = FontProperties(size=_FONT_PT, math_fontfamily=fontset)
    try:
        parsed = mathtext.MathTextParser("agg").parse(f"${latex}$", dpi=_DPI, prop=prop, antialiased=True)
    except ValueError as exc:  # mathtext parse errors
        raise ValueError(f"equation {latex!r} is not valid mathtext ({fontset}): {exc}") from exc
    # Black ink on white: the raster is glyph coverage (reportlab would otherwise need an
    # alpha mask per image).
    grey = 255 - np.asarray(parsed.image, dtype=np.uint8)
    ys, xs = np.nonzero(grey < 250)
    scale = 72.0 / _DPI
    if not len(xs):
        crop, descent = grey, 0.0
    else:
        crop = grey[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        # The baseline lies (height - depth - 1) pixels below the raster's top edge (checked
        # against glyphs that sit on it: x, A, H, 1 give a depth of 0 in every fontset).
        descent = (int(ys.max()) + 1 - (parsed.height - parsed.depth - 1)) * scale
    return {"grey": crop, "metrics": np.asarray([crop.shape[1] * scale, crop.shape[0] * scale, descent]),
            **_png_arrays(crop)}


def _png_arrays(grey: np.ndarray) -> dict[str, np.ndarray]:
    """The RGB image of ``grey`` as PNG bytes (what an inline formula's ``<img>`` reads)
    and the MD5 of its pixels (what PyMuPDF reports for the drawn image)."""
    import hashlib
    import io

    from PIL import Image

    img = Image.fromarray(grey).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return {"png": np.frombuffer(buf.getvalue(), dtype=np.uint8),
            "md5": np.asarray(hashlib.md5(np.asarray(img).tobytes()).hexdigest())}


def product(latex: str, fontset: str = "dejavusans") -> dict[str, np.ndarray]:
    """The cached arrays of a formula: ``grey`` (the cropped raster), ``metrics`` (width,
    height, descent in points at 12 pt), ``png`` (its RGB image as PNG bytes), ``md5``
    (of its RGB pixels). Made once per node (see :func:`rasterize`)."""
    return _product(latex, fontset)


@functools.lru_cache(maxsize=_MEMO)
def _product(latex: str, fontset: str) -> dict[str, np.ndarray]:
    from synth import cache

    if fontset not in FONTSETS:
        raise ValueError(f"unknown mathtext fontset {fontset!r}; valid: {', '.join(FONTSETS)}")
    k = cache.key("ocr1-math", _BUILD_VERSION, latex, fontset, _DPI, _FONT_PT, cache.library_versions("matplotlib"),
                  cache.source_digest(__name__))
    return cache.load_or_build("ocr1-math", k, lambda: _raster_arrays(latex, fontset), lock=False)


@functools.lru_cache(maxsize=_MEMO)
def rasterize(latex: str, fontset: str = "dejavusans"):
    """:func:`render`'s (image, width_pt, height_pt) and the ink's depth below the
    baseline in points at 12 pt (negative when all ink is above it), to set it in a line.

    One parse by mathtext's Agg parser gives the coverage raster and the box metrics
    directly: 4x faster than drawing through a figure (``math_to_image``: a figure, a PNG
    encode and decode, and a second parse for the depth), and glyphs that overhang their
    box (an italic f's tail) are not clipped at the figure's edge. Each raster is made
    once per node and kept in ``synth.cache`` (keyed by the string, the fontset, this
    module's source and matplotlib's version), so most processes never import matplotlib.
    """
    from PIL import Image

    a = _product(latex, fontset)
    w, h, descent = (float(v) for v in a["metrics"])
    return Image.fromarray(a["grey"]).convert("RGB"), w, h, descent


@functools.lru_cache(maxsize=_MEMO)
def reader(latex: str, fontset: str = "dejavusans"):
    """A reportlab ImageReader of the rendered equation (cached so PDF embedding is cheap)."""
    from reportlab.lib.utils import ImageReader

    return ImageReader(render(latex, fontset)[0])


@functools.lru_cache(maxsize=_MEMO)
def entry(index: int) -> str:
    """Pool entry ``index``: a classic equation, or the grammar's equation seeded from it."""
    if index < len(POOL):
        return POOL[index]
    from synth.ocr1.equation_grammar import random_equation

    return random_equation(np.random.default_rng(np.random.SeedSequence([_POOL_SEED, index])))


def pick(rng: np.random.Generator, pool: int = len(POOL)) -> str:
    """One LaTeX string from a pool of ``pool`` entries."""
    return entry(int(rng.integers(pool)))
