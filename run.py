"""Entry point: parse arguments, set up logging, hand over to the command line in `cli.main`."""

import sys

import torch

from cli.main import main
from media.gst import silence_floating_warning

TORCH_THREADS = 1
"""Each network runs in its own batcher thread and stages overlap; one thread per call keeps the
cores busy without oversubscribing them (measured in bench/: 2 threads per call ran slower)."""

if __name__ == "__main__":
    torch.set_num_threads(TORCH_THREADS)
    silence_floating_warning()
    sys.exit(main())
