"""`python -m training.evaluate`: zero-shot, retrieval and alignment evaluation of a checkpoint.

The command line of `training.evaluation`, kept at this path for the Makefile and users; see
`training.evaluation.cli`. `retrieval_metrics` is importable from here (docs/design.md,
"Contracts that must not drift").
"""

import sys

from training.evaluation.cli import main
from training.evaluation.retrieval import retrieval_metrics

__all__ = ["main", "retrieval_metrics"]

if __name__ == "__main__":
    sys.exit(main())
