"""Hook for the lake's Iceberg catalog (connection ``iceberg_default``).

The connection's ``extra`` holds pyiceberg catalog properties as they are documented by pyiceberg:
``type`` (``sql``, ``rest``, ``glue``, ``hive``), ``uri``, ``warehouse``, ``s3.endpoint``, ... ``login`` and
``password``, when set, become ``s3.access-key-id`` and ``s3.secret-access-key``. Without the connection,
pyiceberg's own configuration is used (``PYICEBERG_CATALOG__<NAME>__*`` variables or ``.pyiceberg.yaml``),
which is also how the training process, which imports no Airflow, finds the catalog
(:meth:`IcebergCatalogHook.pyiceberg_env`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

DEFAULT_CATALOG_NAME = "mlops"


class IcebergCatalogHook(BaseHook):
    conn_name_attr = "iceberg_conn_id"
    default_conn_name = "iceberg_default"
    conn_type = "iceberg"
    hook_name = "Iceberg catalog (mlops-ops)"

    def __init__(self, iceberg_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.iceberg_conn_id = iceberg_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden-fields": ["schema", "port", "host"],
            "relabeling": {"login": "S3 access key id", "password": "S3 secret access key"},
            "placeholders": {"extra": '{"type": "rest", "uri": "https://catalog.example.com", "warehouse": "lake"}'},
        }

    def catalog_name(self) -> str:
        return self._catalog()[0]

    def catalog_properties(self) -> dict[str, str]:
        """The catalog's properties (from the connection, else pyiceberg's own configuration)."""
        return self._catalog()[1]

    def _catalog(self) -> tuple[str, dict[str, str]]:
        """The catalog's name and properties, from one look-up of the connection."""
        from mlops_ops._compat import airflow_exception

        AirflowNotFoundException = airflow_exception("AirflowNotFoundException")

        try:
            conn = self.get_connection(self.iceberg_conn_id)
        except AirflowNotFoundException:
            return DEFAULT_CATALOG_NAME, self._pyiceberg_config()
        props = {str(k): str(v) for k, v in conn.extra_dejson.items()}
        if conn.login:
            props.setdefault("s3.access-key-id", conn.login)
        if conn.password:
            props.setdefault("s3.secret-access-key", conn.password)
        name = props.pop("name", DEFAULT_CATALOG_NAME)
        return name, props

    def _pyiceberg_config(self) -> dict[str, str]:
        from pyiceberg.utils.config import Config

        found = Config().get_catalog_config(DEFAULT_CATALOG_NAME)
        if not found:
            raise ValueError(
                f"no Iceberg catalog: create Airflow connection '{self.iceberg_conn_id}' (extra: pyiceberg catalog "
                f"properties) or set PYICEBERG_CATALOG__{DEFAULT_CATALOG_NAME.upper()}__TYPE/URI/..."
            )
        return {str(k): str(v) for k, v in found.items()}

    def get_conn(self) -> Any:
        """A pyiceberg ``Catalog``."""
        from mlops_ops.lake.tables import load_catalog

        return load_catalog(*self._catalog())

    def test_connection(self) -> tuple[bool, str]:
        try:
            namespaces = self.get_conn().list_namespaces()
        except Exception as err:  # noqa: BLE001 - reported to the UI's "Test" button
            return False, f"{type(err).__name__}: {err}"
        return True, f"catalog reachable; {len(namespaces)} namespace(s)"

    def pyiceberg_env(self) -> dict[str, str]:
        """pyiceberg's own variables for this catalog, for a process that loads it without Airflow."""
        from mlops_ops.lake.tables import pyiceberg_env

        return pyiceberg_env(*self._catalog())
