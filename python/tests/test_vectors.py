"""The golden vectors (tests/vectors/*.md) and the codec's check values, run
on symwire.vectors (what `python3 -m symwire.vectors selftest|check` does)."""

import contextlib
import glob
import io
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from symwire import codec, vectors  # noqa: E402


class VectorsTest(unittest.TestCase):
    def test_selftest(self):
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(vectors.main(["vectors", "selftest"]), 0)

    def test_every_vector(self):
        files = sorted(glob.glob(os.path.join(HERE, "..", "..", "tests", "vectors", "*.md")))
        self.assertTrue(files)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(vectors.main(["vectors", "check"] + files), 0)
        self.assertIn(" 0 failed", out.getvalue())

    def test_crc_and_frame_round_trip(self):
        self.assertEqual(codec.crc32c(b"123456789"), 0xE3069283)
        segs = codec.build_frame(1, flags=codec.FLAG_CHECKSUM, stream=1, seq=1, payload=b"hi")
        data = b"".join(b for b, _ in segs)
        info = {}
        _, size = codec.decode_frame(data, 0, codec.Options(), info)
        self.assertEqual((size, info["payload"], info["stream"]), (len(data), b"hi", 1))


if __name__ == "__main__":
    unittest.main()
