"""mlops-ops triggers."""
