"""Shims put on a scoring script's ``sys.path`` (last) by ``batchfx.scoring.aml_run``: the
``azureml.core`` calls Azure ML scripts make, where the real package is not installed."""
