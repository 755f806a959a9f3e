#!/usr/bin/python3
"""The golden-vector checker: a thin wrapper around `python3 -m symwire.vectors`.

The implementation lives in python/symwire/ (codec.py: layer 1 and the
session payloads; vectors.py: the transcript model and the checks), the
project's one Python implementation of SPEC.md. Run with /usr/bin/python3
(it needs Debian's python3-xxhash). `vectors_ref.py --help`-style usage is
in python/symwire/vectors.py.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from symwire.vectors import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv))
