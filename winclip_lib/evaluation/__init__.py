"""Evaluation: image and pixel AUROC, AP, F1-max, and exact AUPRO — :mod:`~winclip_lib.evaluation.metrics` (the numpy
reference) and :mod:`~winclip_lib.evaluation.device_metrics` (what the grid runs: masks prepared once, on the run's
device)."""
