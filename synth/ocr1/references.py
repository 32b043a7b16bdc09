"""Bibliography entries for a page's reference list: ``[k] Authors. Title. Venue, year.``

English entries name authors as initials and a surname (words of the English sources,
capitalised), Chinese entries as a common surname and one or two given-name characters.
Venues are journals, conference proceedings and arXiv preprints. Page ranges use a
hyphen, not an en dash, which Computer Modern's OT1 slots would not draw as itself.
"""

from __future__ import annotations

import functools

import numpy as np

from synth import text_sources as ts

_VENUES_EN = (
    "Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition",
    "Advances in Neural Information Processing Systems", "Journal of Machine Learning Research",
    "IEEE Transactions on Pattern Analysis and Machine Intelligence", "Nature", "Science",
    "Proceedings of the Annual Meeting of the Association for Computational Linguistics",
    "International Conference on Learning Representations", "Physical Review Letters",
    "Journal of the American Statistical Association", "ACM Computing Surveys",
    "International Journal of Document Analysis and Recognition",
)
_VENUES_ZH = ("计算机学报", "软件学报", "中国科学：信息科学", "自动化学报", "电子学报", "中文信息学报",
              "物理学报", "经济研究", "管理世界", "清华大学学报（自然科学版）")
# Common Chinese surnames (single characters), for author names.
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _authors_en(rng: np.random.Generator) -> str:
    words = ts.english_words()
    names = [f"{chr(ord('A') + int(rng.integers(26)))}. {_pick(rng, words).capitalize()}"
             for _ in range(int(rng.integers(1, 5)))]
    if len(names) > 3 and rng.random() < 0.5:
        return f"{names[0]} et al"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@functools.lru_cache(maxsize=1)
def _given_name_chars() -> str:
    """Characters of the 3,000 most frequent nouns, for given names."""
    return "".join(ts.chinese_words()[:3000])


def _authors_zh(rng: np.random.Generator) -> str:
    chars = _given_name_chars()
    return "，".join(_pick(rng, _SURNAMES) + "".join(_pick(rng, chars) for _ in range(int(rng.integers(1, 3))))
                    for _ in range(int(rng.integers(1, 4))))


def entry(rng: np.random.Generator, lang: str, number: int) -> str:
    """Reference ``number`` of a list: authors, title, venue, year (volume, pages)."""
    year = int(rng.integers(1985, 2027))
    first = int(rng.integers(1, 900))
    pages = f"{first}-{first + int(rng.integers(3, 30))}"
    if lang == "zh":
        title = ts.title(rng, "zh", int(rng.integers(2, 5)))
        return (f"[{number}] {_authors_zh(rng)}. {title}[J]. {_pick(rng, _VENUES_ZH)}, {year}, "
                f"{int(rng.integers(1, 60))}({int(rng.integers(1, 13))}): {pages}.")
    title = ts.title(rng, "en", int(rng.integers(3, 9)))
    if rng.random() < 0.2:  # arXiv's YYMM.NNNN identifiers began in 2007, with a 5th digit in 2015
        year = int(rng.integers(2008, 2027))
        digits = 5 if year >= 2015 else 4
        ident = f"{year % 100:02d}{int(rng.integers(1, 13)):02d}.{int(rng.integers(0, 10 ** digits)):0{digits}d}"
        return f"[{number}] {_authors_en(rng)}. {title}. arXiv preprint arXiv:{ident}, {year}."
    venue = _pick(rng, _VENUES_EN)
    if venue.startswith(("Proceedings", "Advances", "International Conference")):
        return f"[{number}] {_authors_en(rng)}. {title}. In {venue}, pages {pages}, {year}."
    return f"[{number}] {_authors_en(rng)}. {title}. {venue}, {int(rng.integers(1, 60))}({int(rng.integers(1, 13))}):{pages}, {year}."
