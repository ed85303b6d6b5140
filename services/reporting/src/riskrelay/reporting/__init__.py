"""riskrelay reporting service."""
