"""riskrelay register service."""
