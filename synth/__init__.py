"""synth: generators of training samples and the Ray/in-process shard runner.

Data flows one way: generator(config, rng) -> Sample -> annotate -> shard writer.
"""

__version__ = "0.1.0"
