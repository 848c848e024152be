"""``python -m hookgnn.cli ...`` (``torchrun -m hookgnn.cli train ...``): the ``hookgnn`` command."""

import sys

from hookgnn.cli.main import main

if __name__ == "__main__":
    main(sys.argv[1:])
