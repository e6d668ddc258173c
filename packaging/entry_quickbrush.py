"""The frozen app's `quickbrush` executable (pyproject's editor.app:main)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not start another app
    from editor.app import main

    sys.exit(main())
