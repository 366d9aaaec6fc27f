"""Optimizer step time against torch.optim and the memory floor (``make bench``).

The logic lives in ``nnopt.bench``; this script is ``nnopt bench`` with the same options:

    python benchmarks/optimizer_step.py [--quick] [--optimizers adam sgd] [--shapes 8x2.5M]
                                        [--json results.json] [--markdown]
"""

from __future__ import annotations

import argparse
import sys

from nnopt.bench.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
