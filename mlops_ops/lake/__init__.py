"""mlops-ops lake."""
