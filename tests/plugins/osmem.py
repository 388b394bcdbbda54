"""Fixtures for osmem-server (owned by the OpenSearch adapter work)."""
