"""`python -m training.train`: LiT training (single process, or torchrun for DDP).

The command line of `training.trainer`, kept at this path for the Makefile, torchrun and users;
see `training.trainer.main`.
"""

import sys

from training.trainer.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
