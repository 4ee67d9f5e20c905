"""The ``mlops-ops`` command line."""
