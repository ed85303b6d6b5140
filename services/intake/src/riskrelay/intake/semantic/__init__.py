"""Semantic detection: indicator models over sentence embeddings, trained from labelled examples."""
