"""mlops-ops operators."""
