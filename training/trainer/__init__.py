"""The trainer: `params` (settings and parser), `main` (set-up), `train` (the step loop around a
`TrainState`), `step`, `data`, `optim`, `distributed`, `checkpoint` and `feature_cache`."""
