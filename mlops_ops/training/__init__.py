"""Training: one entrypoint (``python -m mlops_ops.training``) that every executor runs."""
