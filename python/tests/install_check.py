#!/usr/bin/python3
"""The README's install command and its Python example, as documented: a copy
of python/ is installed into a fresh venv with exactly the README's command
(offline), then the README's example program runs from that venv, outside the
source tree, and must print what the README says (ctest python_install).

Usage: install_check.py. Prints "install ok"; any failure raises (exit 1).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TIMEOUT = 120


def readme_blocks() -> tuple[str, str]:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("\n## Python\n"):]
    section = section[:section.index("\n## ", 1)]
    sh = re.search(r"```sh\n(.*?)```", section, re.S).group(1).strip()
    py = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return sh, py


def main() -> int:
    command, program = readme_blocks()
    with tempfile.TemporaryDirectory() as d:
        # A copy: the build writes python/build and python/symwire.egg-info.
        shutil.copytree(os.path.join(ROOT, "python"), os.path.join(d, "python"),
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
        subprocess.run(["/bin/sh", "-ec", command], cwd=d, check=True, timeout=TIMEOUT)
        with open(os.path.join(d, "example.py"), "w") as f:
            f.write(program)
        run = os.path.join(d, "run")
        os.mkdir(run)
        # Outside the source tree: symwire must come from the venv.
        where = subprocess.run([os.path.join(d, "v", "bin", "python"), "-c",
                                "import symwire; print(symwire.__file__)"], cwd=run,
                               check=True, capture_output=True, text=True, timeout=TIMEOUT)
        assert where.stdout.startswith(os.path.join(d, "v")), where.stdout
        out = subprocess.run([os.path.join(d, "v", "bin", "python"), "../example.py"],
                             cwd=run, check=True, capture_output=True, text=True,
                             timeout=TIMEOUT).stdout.splitlines()
        want = ["b'reading 19 bytessummary: a long document '",
                "part: b'reading 11 bytes'", "part: b'summary: another one'",
                "UNIMPLEMENTED 127"]
        assert out == want, out
        print("\n".join(out))
    print("install ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
