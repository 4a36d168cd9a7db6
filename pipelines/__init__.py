"""Beam wiring: options, one composite PTransform per stage, shard I/O and statistics.

Importing this package loads no Beam: `pipelines.schema` re-exports the Beam-free shard contract
(`filters.contract`) under its documented path.
"""
