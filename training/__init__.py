"""Chinese LiT training and evaluation on the clean shards.

Split as open_clip splits its code:

- the library, at the top: `model`, `loss`, `tokenizer`, `transforms` and `api` (loading a trained
  checkpoint). It parses no command line and imports neither the trainer nor evaluation;
- `training.trainer`: the settings and their parser, the step loop around a `TrainState`, the data
  stream, the optimiser, DDP, checkpoints and the feature cache. It may use evaluation's zero-shot
  for validation;
- `training.evaluation`: retrieval, zero-shot, alignment maps and the benchmark loaders; it uses the
  library, not the trainer.

`training.train`, `training.evaluate` and `training.cache_features` are the command lines. From the
data side, only `filters.contract` is imported: the shard schema, storage and the run layout.
"""
