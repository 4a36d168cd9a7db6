"""The shard schemas under their documented import path (`pipelines.schema.RAW_SCHEMA`, ...).

The contract itself lives in `filters.contract`; this module re-exports it for outside tools and
users that build raw shards or read clean shards through this path.
"""

from filters.contract import *  # noqa: F401,F403 - a re-export
from filters.contract import __all__  # noqa: F401
