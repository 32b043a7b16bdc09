"""train.evaluate's scoring on real generated data of every family, with chosen predictions.

Generation itself is covered by test_train's overfitting test; here the model's output is
replaced by the truth or by a known corruption, so each family's score must come out as
the corruption dictates.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from synth.recipe import parse_recipe
from synth.runner import generate_dataset
from train.configs import get_config
from train.data import ShardSet, iter_texts
from train.evaluate import evaluate
from train.model.vision_inputs import tiling
from train.tokenizer import train_tokenizer

FAMILIES = ("ocr1", "chart", "molecule", "geometry", "vision", "text")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> ShardSet:
    recipe = parse_recipe({"name": "eval-test", "seed": 21, "shards": 2, "rows_per_shard": 12,
                           "mixture": {f: {"weight": 1.0 / len(FAMILIES)} for f in FAMILIES}})
    out = tmp_path_factory.mktemp("eval") / "ds"
    generate_dataset(recipe, str(out), workers=1, executor="local")
    return ShardSet([str(out)])


def _corrupt_table(html: str) -> str:
    """Drop the table's last data row."""
    rows = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    return html.replace(rows[-1], "", 1) if len(rows) > 2 else html


def test_evaluate_scores_every_family_as_the_predictions_dictate(mixed, monkeypatch):
    import train.generate

    run = SimpleNamespace(tok=train_tokenizer(iter_texts(mixed), vocab_size=500), enc_cfg=get_config("tiny").encoder)
    # One corrupted chart and one wrong molecule; everything else is predicted exactly.
    from train.evaluate import collect

    examples = collect(mixed, [], 0)
    fams = {f: [e for e in examples if e["family"] == f] for f in FAMILIES}
    assert all(fams[f] for f in FAMILIES), {f: len(v) for f, v in fams.items()}
    preds = {id(e): e["target"] for e in examples}
    preds[id(fams["chart"][0])] = _corrupt_table(fams["chart"][0]["target"])
    assert preds[id(fams["chart"][0])] != fams["chart"][0]["target"]
    preds[id(fams["molecule"][0])] = "CCO"
    # Prompts repeat across rows, so key the fake model's answers by position instead.
    order = iter([preds[id(e)] for e in examples])
    monkeypatch.setattr(train.generate, "generate",
                        lambda run_, images, prompts, *a, **k: [next(order) for _ in prompts])
    report = evaluate(run, mixed, "base")

    assert report["n_examples"] == len(examples)
    fam = report["families"]
    n_chart, n_mol = len(fams["chart"]), len(fams["molecule"])
    assert fam["chart"]["n"] == n_chart and fam["molecule"]["n"] == n_mol
    assert fam["chart"]["strict_f1"] == pytest.approx((n_chart - 1 + _f1_of_dropped_row(fams["chart"][0])) / n_chart)
    assert fam["molecule"]["exact"] == pytest.approx((n_mol - 1) / n_mol)
    assert fam["molecule"]["tanimoto"] < 1.0
    assert fam["geometry"]["n"] == len(fams["geometry"])
    geo = fam["geometry"]
    assert geo["lines.0.75.f1"] == geo["lines.0.9.f1"] == geo["circles.0.9.f1"] == 1.0
    assert geo["line_type_accuracy"] == 1.0
    # Text-like families (OCR 1.0 pages, vision captions/grounding, text-only) are exact.
    assert report["text"]["precision"] == 1.0 and report["text"]["edit_distance"] == 0.0
    assert report["grounding"]["n"] > 0 and report["grounding"]["mean_iou"] == 1.0
    assert report["by_compression"] and all(b["precision"] == 1.0 for b in report["by_compression"])


def _f1_of_dropped_row(example: dict) -> float:
    from annotate.charts import score_tables

    return score_tables(_corrupt_table(example["target"]), example["target"])["strict_f1"]


def test_valid_vision_tokens_leave_out_the_letterbox():
    """The paper's N_valid: padded modes count only the tokens that show the page."""
    from train.evaluate import valid_vision_tokens, vision_tokens

    enc = get_config("paper").encoder
    a4 = (1240, 1754)
    assert valid_vision_tokens("tiny", enc, *a4) == vision_tokens("tiny", enc) == 64  # stretched, all valid
    assert valid_vision_tokens("small", enc, *a4) == 100
    assert valid_vision_tokens("base", enc, 1000, 1000) == 256
    assert valid_vision_tokens("base", enc, *a4) == 181 == -(-256 * 1240 // 1754)
    assert valid_vision_tokens("base", enc, 1754, 1240) == 181  # landscape pads the other way
    assert valid_vision_tokens("large", enc, *a4) == -(-400 * 1240 // 1754)
    # Gundam: every tile token counts, the global view like Base.
    assert valid_vision_tokens("gundam", enc, *a4, grid=(2, 3)) == 6 * 100 + 181
    assert valid_vision_tokens("gundam_m", enc, *a4, grid=(2, 3)) == 6 * 256 + -(-400 * 1240 // 1754)


def test_several_modes_share_one_decoded_held_out_set(mixed, monkeypatch):
    """held_out reads and decodes the examples once; each mode's report keeps its own
    predictions (the fake model answers exactly in base and with nothing in tiny)."""
    import train.evaluate as ev
    import train.generate

    run = SimpleNamespace(tok=train_tokenizer(iter_texts(mixed), vocab_size=500), enc_cfg=get_config("tiny").encoder)
    decoded = []
    real_decode = ev.decode_image
    monkeypatch.setattr(ev, "decode_image", lambda cell: decoded.append(1) or real_decode(cell))
    data = ev.held_out(run, mixed, ["ocr1.free_ocr"], limit=4)
    assert len(data.examples) == len(data.images) == len(decoded) == 4
    answers = {e["prompt"] + e["target"]: e["target"] for e in data.examples}
    monkeypatch.setattr(train.generate, "generate", lambda run_, images, prompts, mode, *a, **k:
                        [t if mode == "base" else "" for t in (answers[p + e["target"]]
                                                               for p, e in zip(prompts, data.examples))])
    base, tiny = (evaluate(run, mixed, m, data=data) for m in ("base", "tiny"))
    assert len(decoded) == 4  # not decoded again per mode
    assert base["text"]["precision"] == 1.0 and tiny["text"]["precision"] == 0.0
    assert all(e["prediction"] == e["target"] for e in base["examples"])
    assert all(e["prediction"] == "" for e in tiny["examples"])
    assert all("prediction" not in e for e in data.examples)


def test_an_empty_model_scores_nothing_and_the_ratio_is_the_modes(mixed, monkeypatch):
    """What an untrained model typically gives, an empty output for every example, must not
    score 1.0 anywhere (it did: text precision 1.0 on locate answers, which hold only a box,
    and geometry line-type accuracy 1.0); and the compression ratio is that of the mode
    evaluated, over the examples that have an image."""
    import train.evaluate as ev
    import train.generate

    run = SimpleNamespace(tok=train_tokenizer(iter_texts(mixed), vocab_size=500), enc_cfg=get_config("tiny").encoder)
    monkeypatch.setattr(train.generate, "generate", lambda run_, images, prompts, *a, **k: ["" for _ in prompts])
    data = ev.held_out(run, mixed)
    reports = {m: evaluate(run, mixed, m, data=data) for m in ("tiny", "base")}
    r = reports["base"]
    assert r["text"]["n"] > 0 and r["text"]["precision"] == r["text"]["recall"] == r["text"]["f1"] == 0.0
    assert all(v["precision"] == 0.0 for v in r["by_task"].values()), r["by_task"]
    assert "ocr1.locate" not in r["by_task"] and "vision.grounding" not in r["by_task"]  # a box, no text
    assert {"ocr1.locate", "vision.grounding"} <= set(r["grounding_by_task"])
    g = r["grounding"]
    assert g["n"] > 0 and g["box_f1"] == g["mean_iou"] == g["label_accuracy"] == 0.0
    fam = r["families"]
    assert fam["geometry"]["line_type_accuracy"] == 0.0 and fam["geometry"]["lines.0.75.precision"] == 0.0
    assert fam["chart"]["strict_precision"] == 0.0 and fam["molecule"]["exact"] == 0.0
    # The ratio: text tokens over the evaluated mode's vision tokens (tiny config: 1 for
    # tiny, 9 for base), averaged over the examples with an image only.
    for mode, rep in reports.items():
        imaged = [(len(ids), img) for e, ids, img in zip(data.examples, data.target_ids, data.images)
                  if img is not None and ev.reference_text(e["target"], e["task"])
                  and e["family"] not in ev.FAMILY_SCORERS]
        want = np.mean([n / ev.vision_tokens(mode, run.enc_cfg, tiling(mode, img.width, img.height, run.enc_cfg))
                        for n, img in imaged])
        assert rep["text"]["compression"] == pytest.approx(want)
        assert f"{want:.1f}x compression at {rep['text']['vision_tokens']:.0f} vision tokens" in ev.summary_line(rep)
    assert reports["tiny"]["text"]["compression"] > 5 * reports["base"]["text"]["compression"]
