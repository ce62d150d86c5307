"""Training recipes for the small networks trained here on synthetic Kinetics-TPS splits.

`training.common` holds the shared loop (SGD with Nesterov momentum, linear warm-up, step decay,
JSON-lines log, resumable checkpoints); `training.recipes.RECIPES` maps each `run.py train` kind
to its config model and entry point.
"""
