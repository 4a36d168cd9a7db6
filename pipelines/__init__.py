"""Beam wiring: options, one composite PTransform per stage, shard I/O and statistics.

`pipelines.schema` is the exception that imports only pyarrow: it is the shard contract that
`training/` shares, so importing this package must stay free of Beam.
"""
