"""Trainer for the DeepSeek-OCR-style model: configs, model, tokenizer, data and loop."""
