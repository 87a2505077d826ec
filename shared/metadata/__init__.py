"""Registry metadata in MongoDB (PyMongo's async API)."""
