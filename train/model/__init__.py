"""DeepEncoder (SAM + compressor + CLIP) and the MoE decoder of a DeepSeek-OCR-style model."""
