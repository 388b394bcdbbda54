"""What every flow shares: value objects, ports, errors, settings, the source schema, versioning, telemetry."""
