"""``python -m upvid.bench --child``: the isolated speed child (internal; use ``upvid bench``)."""

import sys

from upvid.bench.speed import child_main

if sys.argv[1:] == ["--child"]:
    raise SystemExit(child_main())
raise SystemExit("usage: python -m upvid.bench --child  (internal; use `upvid bench`)")
