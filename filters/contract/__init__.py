"""The shard contract: what the crawl, the filter, the trainer and outside tools agree on.

It lives in `filters/` because that is the one package every other one may import: the rules of
`filters/` give the drop reasons, the crawler writes the download statuses, the Beam jobs write the
shards, and the trainer reads them, while `filters` itself imports no other package of the project.
Nothing here imports Beam or torch, so `training/` takes it as its only import from the data side.

- `vocabulary`: download statuses, drop reasons, the funnel's stages, the name mask;
- `columns`: the explicit columns and Arrow schemas of raw, clean and reject shards;
- `shards`: writing shards atomically, reading them with schema checks;
- `storage`: filesystems and the one temporary-then-rename primitive every artefact goes through;
- `layout`: the names that one stage writes and another reads;
- `funnel`: funnel.json;
- `urls`: URL identity and the `key` derived from it;
- `images`: image bytes to pixels, with one pixel cap;
- `flags`: command-line flags generated from config dataclasses.
"""

from filters.contract.columns import (
                                      CLEAN_COLUMNS,
                                      CLEAN_SCHEMA,
                                      RAW_COLUMNS,
                                      RAW_SCHEMA,
                                      REJECT_COLUMNS,
                                      REJECT_SCHEMA,
                                      SCHEMAS,
)
from filters.contract.funnel import build_funnel, funnel_from_counts, validate_funnel
from filters.contract.layout import (
                                      BEST_CHECKPOINT,
                                      CHECKPOINT_DIR,
                                      CLEAN_DIR,
                                      FUNNEL_FILE,
                                      REJECT_DIR,
                                      SPLIT_MANIFEST_FILE,
                                      SPLIT_SIDES,
                                      STATS_FILE,
                                      TRAIN_CONFIG_FILE,
                                      WORD_CLOUD_FILE,
                                      checkpoint_step,
                                      step_checkpoint_name,
)
from filters.contract.shards import (
                                      SHARD_SUFFIX,
                                      ShardReadError,
                                      ShardSchemaError,
                                      ShardWriter,
                                      check_schema,
                                      iter_shard_batches,
                                      list_shards,
                                      open_shard,
                                      read_shard,
                                      records_to_table,
                                      shard_name,
                                      write_shard,
)
from filters.contract import lock
from filters.contract.lock import OutputLocked, hold_output_lock
from filters.contract.storage import (
                                      AtomicFile,
                                      atomic_output,
                                      delete_file,
                                      exists,
                                      join,
                                      makedirs,
                                      read_json,
                                      remove_stale_temporaries,
                                      resolve,
                                      write_bytes,
                                      write_json,
)
from filters.contract.urls import normalise_url, url_key
from filters.contract.vocabulary import NAME_MASK, STAGES, DownloadStatus, DropReason, Stage, stages

__all__ = [
    "AtomicFile", "BEST_CHECKPOINT", "OutputLocked", "hold_output_lock", "CHECKPOINT_DIR", "CLEAN_COLUMNS", "CLEAN_DIR", "CLEAN_SCHEMA",
    "DownloadStatus", "DropReason", "FUNNEL_FILE", "NAME_MASK", "RAW_COLUMNS", "RAW_SCHEMA",
    "REJECT_COLUMNS", "REJECT_DIR", "REJECT_SCHEMA", "SCHEMAS", "SHARD_SUFFIX", "SPLIT_MANIFEST_FILE",
    "SPLIT_SIDES", "STAGES", "STATS_FILE", "ShardReadError", "ShardSchemaError", "ShardWriter", "Stage",
    "TRAIN_CONFIG_FILE", "WORD_CLOUD_FILE", "atomic_output", "build_funnel", "check_schema",
    "checkpoint_step", "delete_file", "exists", "funnel_from_counts", "iter_shard_batches", "join",
    "list_shards", "makedirs", "normalise_url", "open_shard", "read_json", "read_shard",
    "records_to_table", "remove_stale_temporaries", "resolve", "shard_name", "stages",
    "step_checkpoint_name", "url_key", "validate_funnel", "write_bytes", "write_json", "write_shard",
]
