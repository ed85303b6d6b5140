"""riskrelay intake service."""
