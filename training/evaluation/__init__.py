"""Evaluation of a trained checkpoint (paper section 5): `retrieval`, `zeroshot` (with `prompts`),
`alignment`, `embeddings` (batched, cached) and the benchmark loaders in `datasets`; `cli` is
`python -m training.evaluate`. It uses the library (`training.api`, `training.loss`...), never the
trainer."""
