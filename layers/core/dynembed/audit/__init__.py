"""Flow 4, audit: compare source, ledger and index; publish drift gauges; optionally enqueue repairs."""
