"""The local sentence encoder: numpy reference, onnxruntime, static table, cache and errors."""

from __future__ import annotations

import numpy as np
import pytest

from riskrelay.intake.encoder import EncoderSettings, SentenceEncoder, load_encoder

pytestmark = pytest.mark.unit

VARIED_TEXTS = [
    "my card was stolen",
    "someone took my credit card",
    "how do I change my PIN",
    "I was charged twice for the same order and nobody answers my e-mails.",
    "Mi tarjeta fue robada ayer en el metro",
    "我的信用卡被盗了",
    "Карта украдена, срочно заблокируйте",
    "🙂🔥💳",
    "URGENT!!! ACCOUNT HACKED??? password changed, 2FA disabled",
    "a",
]


@pytest.fixture(scope="session")
def numpy_encoder() -> SentenceEncoder:
    return load_encoder(EncoderSettings(runtime="numpy"))


def test_reference_matches_the_published_all_minilm_embeddings(
    numpy_encoder: SentenceEncoder,
) -> None:
    # The first six components sentence-transformers prints for these sentences in the
    # all-MiniLM-L6-v2 model card example.
    vectors = numpy_encoder.encode(["This is an example sentence", "Each sentence is converted"])
    published = np.array(
        [
            [0.0676569, 0.0634959, 0.0487131, 0.0793050, 0.0374481, 0.0026528],
            [0.0864386, 0.1027627, 0.0053946, 0.0020444, -0.0099634, 0.0253855],
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(vectors[:, :6], published, atol=2e-6)


def test_rows_are_unit_length_float32(numpy_encoder: SentenceEncoder) -> None:
    vectors = numpy_encoder.encode(VARIED_TEXTS)
    assert vectors.shape == (len(VARIED_TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert numpy_encoder.dim == 384


def test_stolen_card_is_closer_to_taken_card_than_to_pin_change(
    numpy_encoder: SentenceEncoder,
) -> None:
    stolen, taken, pin = numpy_encoder.encode(
        ["my card was stolen", "someone took my credit card", "how do I change my PIN"]
    )
    assert stolen @ taken > stolen @ pin + 0.2


def test_batching_does_not_change_embeddings(numpy_encoder: SentenceEncoder) -> None:
    together = numpy_encoder.encode(VARIED_TEXTS)
    alone = np.vstack([numpy_encoder.encode([text]) for text in VARIED_TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
