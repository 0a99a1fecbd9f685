"""Runs nncore.examples.mnist_cnn (see python/nncore/examples/mnist_cnn.py for the program).

    python examples/mnist_cnn.py --help
"""

import pathlib
import sys

try:
    import nncore  # noqa: F401
except ImportError:  # running from a source checkout with a dev build (tools/dev_build.sh)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))

from nncore.examples.mnist_cnn import main

if __name__ == "__main__":
    main()
