"""Runs nncore.examples.cross_validation (see python/nncore/examples/cross_validation.py).

    python examples/cross_validation.py --help
"""

import pathlib
import sys

try:
    import nncore  # noqa: F401
except ImportError:  # running from a source checkout with a dev build (tools/dev_build.sh)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))

from nncore.examples.cross_validation import main

if __name__ == "__main__":
    main()
