"""Local mode: the whole pipeline on one machine (moto, osmem-server, pumps, local models)."""
