"""``python -m b2b`` is the ``b2b`` command."""

import sys

# b2b.cli imports no b2b module at its top, so it loads even while a folder named b2b shadows the
# package (see b2b.cli.unshadow); b2b itself is imported only once that is undone
from b2b.cli import unshadow

unshadow()

from b2b.cli import main  # noqa: E402  (after the package is the right one)

if __name__ == "__main__":
    sys.exit(main())
