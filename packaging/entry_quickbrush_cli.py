"""The frozen app's `quickbrush-cli` executable (pyproject's inference.cli:main)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from inference.cli import main

    sys.exit(main())
