"""Hand-checked cases for train.metrics (edit distance, word P/R/F1, grounding IoU matching)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from train.metrics import (PRF, Item, box_iou, edit_distance, grounding_scores, match_boxes, normalized_edit_distance,
                           parse_grounded, plain_text, word_prf, words)


def _dp(a: str, b: str) -> int:
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[:], i
        for j, cb in enumerate(b, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (ca != cb))
    return d[-1]


@pytest.mark.parametrize("a,b,want", [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("flaw", "lawn", 2),
                                      ("中文字", "中字", 1), ("same", "same", 0)])
def test_edit_distance_hand_cases(a, b, want):
    assert edit_distance(a, b) == want


def test_edit_distance_matches_plain_dp_on_all_short_strings():
    strings = ["".join(p) for n in range(5) for p in itertools.product("ab", repeat=n)]
    for a in strings:
        for b in strings:
            assert edit_distance(a, b) == _dp(a, b), (a, b)


def test_normalized_edit_distance_divides_by_longer():
    assert normalized_edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
    assert normalized_edit_distance("", "") == 0.0
    assert normalized_edit_distance("", "ab") == 1.0


def test_words_split_latin_numbers_and_cjk_characters():
    assert words("Sales 12.5% in 2019, 中文 ok") == ["Sales", "12.5", "in", "2019", "中", "文", "ok"]


def test_word_prf_over_sets():
    prf = word_prf("the cat sat", "the cat ran away")
    assert (prf.precision, prf.recall) == (pytest.approx(2 / 3), 0.5)
    assert prf.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert word_prf("a a a b", "a b").precision == 1.0  # sets, not counts
    assert word_prf("", "") == word_prf("x", "x")
    assert word_prf("", "x").f1 == 0.0
    assert word_prf("中文", "中字").precision == 0.5


def test_parse_and_plain_text_of_grounded_output():
    text = "<|ref|>title<|/ref|><|det|>[[1, 2, 30, 40]]<|/det|>\n# Head\n\n<|ref|>text<|/ref|><|det|>[[0,0,10,10], [5, 5, 20, 20]]<|/det|>\nBody"
    items = parse_grounded(text)
    assert items == [Item("title", (1, 2, 30, 40)), Item("text", (0, 0, 10, 10)), Item("text", (5, 5, 20, 20))]
    assert plain_text(text, keep_refs=False) == "# Head\n\n\nBody"
    assert plain_text("<|ref|>hello<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>", keep_refs=True) == "hello"


def test_box_iou_hand_cases():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_matching_is_one_to_one_and_greedy_by_iou():
    ref = [(0, 0, 10, 10), (20, 20, 30, 30)]
    pred = [(21, 21, 30, 30), (0, 0, 10, 9), (0, 0, 10, 10), (50, 50, 60, 60)]
    m = match_boxes(pred, ref, 0.5)
    assert [(i, j) for i, j, _ in m] == [(2, 0), (0, 1)]
    assert m[0][2] == 1.0 and m[1][2] == pytest.approx(81 / 100)


def test_grounding_scores_label_accuracy_and_recall():
    ref = [Item("title", (0, 0, 10, 10)), Item("text", (20, 20, 30, 30)), Item("table", (40, 40, 50, 50))]
    pred = [Item("title", (0, 0, 10, 10)), Item("footer", (20, 20, 30, 30))]
    s = grounding_scores(pred, ref)
    assert s["n_matched"] == 2 and s["box_precision"] == 1.0 and s["box_recall"] == pytest.approx(2 / 3)
    assert s["mean_iou"] == 1.0 and s["label_accuracy"] == 0.5
    assert grounding_scores([], ref)["box_recall"] == 0.0


def test_edit_distance_is_fast_on_a_page():
    rng = np.random.default_rng(0)
    a = "".join(rng.choice(list("abcdefgh "), 2000))
    b = a[:1000] + "xyz" + a[1003:]
    assert edit_distance(a, b) == 3


def test_grounding_scores_reward_an_empty_answer_to_an_absent_object():
    empty = grounding_scores([], [])
    assert empty["box_f1"] == empty["mean_iou"] == empty["label_accuracy"] == 1.0
    guessed = grounding_scores([Item("the blue star", (10, 10, 50, 50))], [])
    assert guessed["box_precision"] == 0.0 and guessed["mean_iou"] == 0.0
    missed = grounding_scores([], [Item("the red circle", (10, 10, 50, 50))])
    assert missed["box_recall"] == 0.0 and missed["mean_iou"] == 0.0


def test_empty_sets_are_scored_honestly():
    """No 1.0 for saying nothing (issue 17 item 13); the rules of train.metrics' docstring."""
    ref = [Item("the red circle", (10, 10, 50, 50))]
    # An empty prediction of a non-empty truth: precision, recall, F1, IoU, labels all 0.
    missed = grounding_scores([], ref)
    assert missed["box_precision"] == missed["box_recall"] == missed["box_f1"] == 0.0
    assert missed["mean_iou"] == missed["label_accuracy"] == 0.0
    # No answer at all (no <|det|> in the output) is not the right answer to an absent object.
    silent = grounding_scores([], [], answered=False)
    assert silent["box_precision"] == silent["box_recall"] == silent["box_f1"] == 0.0
    assert silent["mean_iou"] == silent["label_accuracy"] == 0.0
    # Words: an empty prediction has precision 0 against any text; a guess against no text
    # has precision and recall 0; nothing against nothing is right.
    assert word_prf("", "the cat") == word_prf("the cat", "") == PRF(0.0, 0.0, 0.0)
    assert word_prf("", "") == PRF(1.0, 1.0, 1.0)


def test_geometry_line_type_accuracy_is_not_1_for_an_empty_answer():
    from annotate.geometry_metrics import geometry_scores

    truth = "{'Line': {'line': ['(0, 0) -- (4, 0)', '(0, 0) -- (0, 4)'], 'line_type': ['-', '--']}}"
    empty = geometry_scores("", truth)
    assert empty["line_type_accuracy"] == 0.0 and empty["lines"][0.75]["precision"] == 0.0
    assert geometry_scores(truth, truth)["line_type_accuracy"] == 1.0
    assert geometry_scores("", "")["line_type_accuracy"] == 1.0  # no line anywhere: nothing to get wrong
