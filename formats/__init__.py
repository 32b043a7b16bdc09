"""Formats shared by the generators (synth/), the annotators (annotate/) and the trainer.

Both sides depend on this package and it depends on neither, so data flows one way:
- ``formats.bins``: coordinates in 1000 bins relative to the stored image;
- ``formats.slow_perception``: the Slow Perception geometry grammar (primitives, the
  perceptual ruler, format and parse).
"""
