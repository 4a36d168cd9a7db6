"""`python -m training.cache_features`: the locked-tower feature cache.

The command line of `training.trainer.feature_cache`, kept at this path for the Makefile and users.
"""

import sys

from training.trainer.feature_cache import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
