"""The method: OpenCLIP backbone, window-masked encoder, prompt ensemble, zero-shot and few-shot scoring, model.

Knows nothing of datasets, experiment runs or reports.
"""
