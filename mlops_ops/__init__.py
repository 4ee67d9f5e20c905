"""mlops-ops: reusable Airflow 3 operators and DAG factories for ML pipelines.

Importing this package is cheap by design: it never imports pyspark, mlflow,
evidently, great_expectations, torch, sklearn, pandas, boto3 or confluent_kafka.
"""

from __future__ import annotations

__version__ = "0.1.0"
