"""``python -m b2b`` is the ``b2b`` command."""

import sys

from b2b.cli import main

if __name__ == "__main__":
    sys.exit(main())
