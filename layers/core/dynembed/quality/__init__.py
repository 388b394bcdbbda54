"""Retrieval quality: golden sets, metrics, the promotion gate and evaluation reports."""
