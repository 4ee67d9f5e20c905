"""One hook per external system; Kafka and S3 use the Airflow providers' hooks."""
