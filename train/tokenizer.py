"""Tokenizers and the plain prompt template of DESIGN.md §1.

Two flavours share one wrapper, :class:`OCRTokenizer`:

* "project": a byte-level BPE trained on the run's own data (:func:`train_tokenizer`),
  specials ``<pad> <bos> <eos> <image>`` at ids 0-3 and the grounding markers after them.
  A sequence is ``BOS, N x <image>, instruction, target, EOS``, the instruction being
  the record's prompt after its ``<image>\\n`` prefix.
* "official": DeepSeek-OCR's own (DeepSeek-V3's byte-level BPE plus 12 OCR tokens at ids
  128815-128826, built by ``train.official.tokenizer``), with the official ``infer()``'s
  plain template: ``[bos=0] + N x <image> + ids(prompt after "<image>", its "\\n" kept)``,
  then the target and ``eos=1``. The prompt is stripped first, as the official
  ``format_messages`` does.

Which one a tokenizer.json is follows from its special tokens, so a run's generation and
evaluation use the template it was trained with. Labels are -100 everywhere except on
the target and the EOS, so the loss is paid only on what the model must write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

IMAGE_TOKEN = "<image>"
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
GROUNDING_TOKENS = ("<|grounding|>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>")
# Order fixes the ids: pad=0, bos=1, eos=2, image=3, then the grounding markers.
SPECIAL_TOKENS = (PAD, BOS, EOS, IMAGE_TOKEN, *GROUNDING_TOKENS)
IGNORE_INDEX = -100
IMAGE_PREFIX = IMAGE_TOKEN + "\n"

# DeepSeek-V3's specials (ids 0, 1, 2) and DeepSeek-OCR's 12 added tokens, in id order.
OFFICIAL_BOS, OFFICIAL_EOS, OFFICIAL_PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
OCR_TOKENS = (IMAGE_TOKEN, "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>", "<td>", "</td>", "<tr>",
              "</tr>", "<|User|>", "<|Assistant|>")
FLAVOURS = {  # flavour -> (pad, bos, eos, image)
    "project": (PAD, BOS, EOS, IMAGE_TOKEN),
    "official": (OFFICIAL_PAD, OFFICIAL_BOS, OFFICIAL_EOS, IMAGE_TOKEN),
}


@dataclass(frozen=True)
class Encoded:
    """One tokenised example: ids, labels (-100 outside the target), and counts."""

    input_ids: list[int]
    labels: list[int]
    n_image_tokens: int
    n_target_tokens: int


def tokenizer_flavour(tok: Tokenizer) -> str:
    """"project" or "official" from a tokenizer's special tokens; ValueError naming what
    is missing when it is neither."""
    if all(tok.token_to_id(t) is not None for t in SPECIAL_TOKENS):
        return "project"
    if tok.token_to_id(OFFICIAL_BOS) is not None:
        missing = [t for t in (OFFICIAL_EOS, *OCR_TOKENS) if tok.token_to_id(t) is None]
        if not missing:
            return "official"
        raise ValueError(f"tokenizer has DeepSeek's vocabulary but lacks the OCR tokens {missing}; "
                         f"DeepSeek-OCR's adds {list(OCR_TOKENS)} (train.official.tokenizer)")
    missing = [t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None]
    raise ValueError(f"tokenizer lacks special tokens {missing}; expected all of {list(SPECIAL_TOKENS)} "
                     f"(the project's BPE) or DeepSeek-OCR's {OFFICIAL_BOS} ... {list(OCR_TOKENS)}")


class OCRTokenizer:
    """A thin wrapper over a ``tokenizers.Tokenizer`` with its flavour's special ids and
    prompt template (see the module docstring)."""

    def __init__(self, tok: Tokenizer):
        self.flavour = tokenizer_flavour(tok)
        self.tok = tok
        pad, bos, eos, image = FLAVOURS[self.flavour]
        self.pad_id = tok.token_to_id(pad)
        self.bos_id = tok.token_to_id(bos)
        self.eos_id = tok.token_to_id(eos)
        self.image_id = tok.token_to_id(image)
        self._strip_ids = {self.pad_id, self.bos_id, self.eos_id, self.image_id}

    @property
    def official(self) -> bool:
        """Whether this is DeepSeek-OCR's tokenizer and template."""
        return self.flavour == "official"

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of text (no BOS/EOS added); special markers stay single tokens."""
        if not text:
            return []
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts at once (parallel in the Rust library)."""
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids; pad/bos/eos/image are dropped, grounding markers kept verbatim."""
        keep = [int(i) for i in ids if int(i) not in self._strip_ids]
        return self.tok.decode(keep, skip_special_tokens=False)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json."""
        self.tok.save(str(path))

    @classmethod
    def load(cls, path: str | Path) -> "OCRTokenizer":
        """Read a tokenizer.json written by :meth:`save`."""
        return cls(Tokenizer.from_file(str(path)))

    # -- the prompt template -------------------------------------------------
    def instruction(self, prompt: str, has_image: bool) -> str:
        """The text of a record's prompt that follows the image placeholders."""
        if self.official:
            return official_instruction(prompt, has_image)
        return split_prompt(prompt, has_image)

    def prompt_ids(self, prompt: str, n_image_tokens: int) -> list[int]:
        """BOS, the image placeholders and the instruction: what generation is fed."""
        instruction = self.instruction(prompt, has_image=n_image_tokens > 0)
        return [self.bos_id] + [self.image_id] * n_image_tokens + self.encode(instruction)

    def encode_example(self, prompt: str, target: str, n_image_tokens: int) -> Encoded:
        """The full training sequence and its labels (loss on target + EOS only)."""
        head = self.prompt_ids(prompt, n_image_tokens)
        tail = self.encode(target) + [self.eos_id]
        return Encoded(head + tail, [IGNORE_INDEX] * len(head) + tail, n_image_tokens, len(tail) - 1)


def split_prompt(prompt: str, has_image: bool) -> str:
    """The instruction text of a record's prompt (what follows ``<image>\\n``).

    Text-only rows have no image: their prompt is used as is (often empty).
    """
    if prompt.startswith(IMAGE_PREFIX):
        return prompt[len(IMAGE_PREFIX):]
    if prompt.startswith(IMAGE_TOKEN):
        return prompt[len(IMAGE_TOKEN):]
    if has_image and IMAGE_TOKEN in prompt:
        raise ValueError(f"prompt {prompt!r}: <image> must lead the prompt (DESIGN.md §1)")
    return prompt


def official_instruction(prompt: str, has_image: bool) -> str:
    """The official template's text after the image: the stripped prompt after its leading
    ``<image>`` (the ``"\\n"`` that follows stays: it is the first text token, id 201)."""
    text = prompt.strip()
    if text.startswith(IMAGE_TOKEN):
        return text[len(IMAGE_TOKEN):]
    if has_image and IMAGE_TOKEN in text:
        raise ValueError(f"prompt {prompt!r}: <image> must lead the prompt (DESIGN.md §1)")
    return text


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> OCRTokenizer:
    """Train a byte-level BPE on texts (targets and prompts) with the special tokens.

    vocab_size counts the 256 byte symbols and the special tokens too.
    """
    floor = 256 + len(SPECIAL_TOKENS)
    if vocab_size <= floor:
        raise ValueError(f"vocab_size={vocab_size} too small: must exceed {floor} (bytes + special tokens)")
    tok = Tokenizer(models.BPE())
    # No prefix space: the target must round-trip byte for byte.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_strip_markers(texts), trainer=trainer)
    return OCRTokenizer(tok)


def _strip_markers(texts: Iterable[str]) -> Iterable[str]:
    """Texts without special markers, so BPE does not learn merges across them."""
    for t in texts:
        for s in SPECIAL_TOKENS:
            t = t.replace(s, " ")
        yield t
