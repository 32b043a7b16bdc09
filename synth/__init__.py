"""synth: generators of training samples and the Ray/in-process shard runner.

Data flows one way: generator(config, rng) -> Sample -> annotate -> shard writer.
"""

__version__ = "0.1.0"

# Bumped whenever the same recipe and seed give different shard bytes (a new look, a
# changed default, a fixed box): manifest.json records it for the run and for each shard,
# and tests/golden/shards.json is regenerated in the same commit.
# 2: ocr1 JPEG quality 60, inline formulas from a seeded pool, Chinese faces declare the
#    ascent their glyphs reach, rows lose `text`, truth JSON without spaces (issue 18).
# 3: ocr1 body columns run to their foot (floats wait, headings stay, a paragraph supply
#    ends full pages; issue 17 item 5).
# 4: charts print every table name and every label legibly (legends clear of marks,
#    wrapped/turned tick labels, value labels moved, shrunk or dropped; truth.printed and
#    truth.dpi; issue 17 items 1-3).
# 5: the scan and photo looks run on OpenCV (same operations and parameters; its kernels
#    round differently: scan/photo pages' pixels move by about 1 grey level on average,
#    edge pixels of the nearest-neighbour warp by more; clean pages and every box, word and
#    truth field unchanged; issue 18).
GENERATOR_VERSION = 5
