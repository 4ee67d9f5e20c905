"""mlops-ops factories."""
