"""upvid: command-line video super-resolution.

Data flow: probe -> decode (:mod:`upvid.io`) -> chunks, temporal padding, tiles
(:mod:`upvid.engine`) -> model (:mod:`upvid.models`) -> stitch -> encode + mux (:mod:`upvid.io`).
"""

__version__ = "0.1.0"
