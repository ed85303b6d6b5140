"""riskrelay classifier service."""
