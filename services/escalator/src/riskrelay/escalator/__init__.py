"""riskrelay escalator service."""
