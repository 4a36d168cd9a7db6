"""The web side of the pipeline: query lists, search-engine clients, HTTP policy and image download.

Nothing here imports Beam; `pipelines/` wires these pieces into jobs.
"""
