"""Evaluation: image and pixel AUROC, AP, F1-max, and exact AUPRO."""
