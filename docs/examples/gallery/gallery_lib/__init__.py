"""Code of the gallery's pipelines: data generators, Spark transforms, a custom metric."""
