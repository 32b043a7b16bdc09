"""The released DeepSeek-OCR checkpoint in and out (docs/finetune.md, docs/model.md).

* :func:`~train.official.load.load_official` / :func:`~train.official.load.read_snapshot`:
  a local snapshot (config.json, safetensors, tokenizer) checked and loaded into OCRModel;
* :func:`~train.official.export.export_official`: our model back in the official format;
* :func:`~train.official.adapter.write_peft_adapter`: a LoRA run's adapters as a PEFT adapter
  of the official model;
* :mod:`train.official.names`: the key/layout mapping (``official_targets`` for adapters);
* :mod:`train.official.tokenizer`: DeepSeek-OCR's tokenizer (DeepSeek-V3's + 12 OCR tokens).

Every refusal is an :class:`~train.official.config.OfficialFormatError` of one line.
"""
