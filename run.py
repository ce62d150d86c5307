"""Entry point: parse arguments, set up logging, hand over to the command line in `pipeline.cli`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
