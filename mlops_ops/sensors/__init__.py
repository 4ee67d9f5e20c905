"""mlops-ops sensors."""
