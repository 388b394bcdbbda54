"""Fixtures for moto (AWS emulation)."""
