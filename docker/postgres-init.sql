-- Second database on the compose stack's Postgres: MLflow's backend store (Airflow uses the database "airflow").
CREATE DATABASE mlflow OWNER airflow;
