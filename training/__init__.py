"""LiT training and evaluation: tokenizer, data, model, losses, optimiser, the DDP loop and
zero-shot / retrieval evaluation.

Imports neither Beam nor `crawler`; it reads clean shards through `pipelines.schema`.
"""
