"""Web pieces the plugin adds to the Airflow API server."""
