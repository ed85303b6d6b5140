"""The local sentence encoder: numpy reference, onnxruntime, static table, cache and errors.

The bundled all-MiniLM-L6-v2 is built once per session in a temporary cache (fp32 and int8
ONNX models, static table); determinism, cache and loading-error tests use a tiny BERT written
here (random weights from a fixed seed), which builds in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from riskrelay.intake.encoder import (
    EncoderLoadError,
    EncoderSettings,
    SentenceEncoder,
    StaticEncoder,
    TextEncoder,
    graph,
    load,
    load_encoder,
    load_static_encoder,
)
from riskrelay.intake.encoder import __main__ as encoder_cli
from riskrelay.intake.encoder.backends import INT8_RECIPE
from riskrelay.intake.encoder.cache import manifest_path
from riskrelay.intake.encoder.load import model_source

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
    "The export keeps failing with error 502 since this morning's update. " * 40,
]

SUPPORT_TEXTS = [
    "my card was stolen",
    "someone took my credit card",
    "I lost my wallet with all my cards",
    "how do I change my PIN",
    "I forgot my PIN code",
    "the app crashes when I open it",
    "the mobile app keeps closing on startup",
    "I was charged twice for one order",
    "there is a duplicate payment on my statement",
    "please cancel my subscription",
    "I want to stop my membership",
    "someone logged into my account without permission",
    "my account was hacked",
    "where is my parcel",
    "my delivery has not arrived yet",
]


# -- the bundled model, built once -------------------------------------------------------------


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(scope="session")
def settings(cache_dir: Path) -> EncoderSettings:
    return EncoderSettings(cache_dir=cache_dir, threads=2)


@pytest.fixture(scope="session")
def onnx_encoder(settings: EncoderSettings) -> SentenceEncoder:
    return load_encoder(settings.model_copy(update={"quantized": False}))


@pytest.fixture(scope="session")
def int8_encoder(settings: EncoderSettings) -> SentenceEncoder:
    return load_encoder(settings.model_copy(update={"quantized": True}))


@pytest.fixture(scope="session")
def numpy_encoder(settings: EncoderSettings) -> SentenceEncoder:
    # One BLAS thread: the reference is slow anyway, and spinning threads on shared cores slower.
    return load_encoder(settings.model_copy(update={"runtime": "numpy", "threads": 1}))


@pytest.fixture(scope="session")
def static_build_cpu_seconds(settings: EncoderSettings) -> float:
    started = time.process_time()
    load_static_encoder(settings)
    return time.process_time() - started


@pytest.fixture(scope="session")
def static_encoder(settings: EncoderSettings, static_build_cpu_seconds: float) -> StaticEncoder:
    return load_static_encoder(settings)


# -- a tiny BERT --------------------------------------------------------------------------------

TINY_WORDS = [
    "my",
    "card",
    "was",
    "stolen",
    "someone",
    "took",
    "credit",
    "how",
    "do",
    "i",
    "change",
    "pin",
    "the",
    "app",
    "crashes",
    "when",
    "open",
    "it",
    "charged",
    "twice",
    "for",
    "order",
    "please",
    "cancel",
    "subscription",
    "account",
    "hacked",
    "where",
    "is",
    "parcel",
]
TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
TINY_VOCAB = [*TINY_SPECIALS, *dict.fromkeys(TINY_WORDS)]
TINY_HIDDEN, TINY_HEADS, TINY_LAYERS, TINY_INNER, TINY_POSITIONS = 32, 4, 2, 64, 40


def tiny_tensors(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vocab_size = len(TINY_VOCAB)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def gain() -> np.ndarray:
        return (1.0 + rng.standard_normal(TINY_HIDDEN) * 0.05).astype(np.float32)

    tensors = {
        "embeddings.word_embeddings.weight": normal(vocab_size, TINY_HIDDEN),
        "embeddings.position_embeddings.weight": normal(TINY_POSITIONS, TINY_HIDDEN),
        "embeddings.token_type_embeddings.weight": normal(2, TINY_HIDDEN),
        "embeddings.LayerNorm.weight": gain(),
        "embeddings.LayerNorm.bias": normal(TINY_HIDDEN),
    }
    for index in range(TINY_LAYERS):
        at = f"encoder.layer.{index}."
        for part in ("query", "key", "value"):
            tensors[at + f"attention.self.{part}.weight"] = normal(TINY_HIDDEN, TINY_HIDDEN)
            tensors[at + f"attention.self.{part}.bias"] = normal(TINY_HIDDEN)
        tensors[at + "attention.output.dense.weight"] = normal(TINY_HIDDEN, TINY_HIDDEN)
        tensors[at + "attention.output.dense.bias"] = normal(TINY_HIDDEN)
        tensors[at + "attention.output.LayerNorm.weight"] = gain()
        tensors[at + "attention.output.LayerNorm.bias"] = normal(TINY_HIDDEN)
        tensors[at + "intermediate.dense.weight"] = normal(TINY_INNER, TINY_HIDDEN)
        tensors[at + "intermediate.dense.bias"] = normal(TINY_INNER)
        tensors[at + "output.dense.weight"] = normal(TINY_HIDDEN, TINY_INNER)
        tensors[at + "output.dense.bias"] = normal(TINY_HIDDEN)
        tensors[at + "output.LayerNorm.weight"] = gain()
        tensors[at + "output.LayerNorm.bias"] = normal(TINY_HIDDEN)
    return tensors


def write_tiny_model(directory: Path, seed: int = 7) -> Path:
    vocab = {token: index for index, token in enumerate(TINY_VOCAB)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.add_special_tokens(TINY_SPECIALS)
    (directory / "1_Pooling").mkdir(parents=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "vocab_size": len(vocab),
        "hidden_size": TINY_HIDDEN,
        "num_hidden_layers": TINY_LAYERS,
        "num_attention_heads": TINY_HEADS,
        "intermediate_size": TINY_INNER,
        "max_position_embeddings": TINY_POSITIONS,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16}))
    pooling = {"word_embedding_dimension": TINY_HIDDEN, "pooling_mode_mean_tokens": True}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    save_file(tiny_tensors(seed), str(directory / "model.safetensors"))
    return directory


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "tiny-bert")


def tiny_settings(model_dir: Path, cache: Path, **overrides: object) -> EncoderSettings:
    """The tiny model's window is 16 word pieces, so windows share 4."""
    fields: dict[str, object] = {"window_overlap_tokens": 4, "quantized": False, **overrides}
    return EncoderSettings(model_dir=model_dir, cache_dir=cache, **fields)


def cached_files(cache: Path, suffix: str) -> list[Path]:
    return sorted(path for path in cache.iterdir() if path.name.endswith(suffix))


# -- the reference and the runtimes agree --------------------------------------------------------


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


def test_onnx_matches_the_numpy_reference(
    onnx_encoder: SentenceEncoder, numpy_encoder: SentenceEncoder
) -> None:
    difference = np.abs(onnx_encoder.encode(VARIED_TEXTS) - numpy_encoder.encode(VARIED_TEXTS))
    assert difference.max() < 1e-4
    assert onnx_encoder.model_id == numpy_encoder.model_id


def test_int8_stays_close_to_fp32(
    onnx_encoder: SentenceEncoder, int8_encoder: SentenceEncoder
) -> None:
    cosines = (onnx_encoder.encode(SUPPORT_TEXTS) * int8_encoder.encode(SUPPORT_TEXTS)).sum(axis=1)
    assert cosines.mean() > 0.98
    assert cosines.min() > 0.95
    assert int8_encoder.model_id == f"{onnx_encoder.model_id}:int8r{INT8_RECIPE}"


@pytest.mark.parametrize("name", ["onnx_encoder", "numpy_encoder", "int8_encoder"])
def test_rows_are_unit_length_float32(name: str, request: pytest.FixtureRequest) -> None:
    encoder: SentenceEncoder = request.getfixturevalue(name)
    vectors = encoder.encode(VARIED_TEXTS)
    assert vectors.shape == (len(VARIED_TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.dim == 384


def test_int8_embeddings_do_not_depend_on_the_batch(int8_encoder: SentenceEncoder) -> None:
    # Per-tensor activation scales would make a text's row depend on its batch mates.
    text = "someone logged into my account without permission"
    loud = "THE WHOLE SYSTEM IS DOWN!!! 500 errors everywhere, we lost thousands of orders"
    alone = int8_encoder.encode([text])[0]
    int8_encoder.forget()
    batched = int8_encoder.encode([loud, "hi", text])[2]
    assert np.array_equal(alone, batched)


def test_concurrent_runs_give_the_rows_of_one_run(settings: EncoderSettings) -> None:
    one_run = load_encoder(
        settings.model_copy(update={"quantized": True, "parallel_runs": 1, "memo_entries": 0})
    )
    concurrent = load_encoder(
        settings.model_copy(update={"quantized": True, "parallel_runs": 2, "memo_entries": 0})
    )
    texts = VARIED_TEXTS * 4
    assert np.array_equal(concurrent.encode(texts), one_run.encode(texts))


def test_remembered_texts_give_the_same_rows(settings: EncoderSettings) -> None:
    encoder = load_encoder(settings.model_copy(update={"memo_entries": 2}))
    first = encoder.encode(SUPPORT_TEXTS[:3])
    assert encoder.memo_hits == 0
    again = encoder.encode([SUPPORT_TEXTS[2], SUPPORT_TEXTS[1]])
    assert encoder.memo_hits == 2
    assert np.array_equal(again, first[[2, 1]])
    # Only the two most recent texts are kept.
    encoder.encode([SUPPORT_TEXTS[0]])
    assert encoder.memo_hits == 2


def test_batching_and_order_do_not_change_embeddings(onnx_encoder: SentenceEncoder) -> None:
    together = onnx_encoder.encode(VARIED_TEXTS)
    alone = np.vstack([onnx_encoder.encode([text]) for text in VARIED_TEXTS])
    reversed_order = onnx_encoder.encode(VARIED_TEXTS[::-1])[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, reversed_order, atol=1e-5)


@pytest.mark.parametrize("name", ["onnx_encoder", "int8_encoder", "static_encoder"])
def test_stolen_card_is_closer_to_taken_card_than_to_pin_change(
    name: str, request: pytest.FixtureRequest
) -> None:
    encoder: TextEncoder = request.getfixturevalue(name)
    stolen, taken, pin = encoder.encode(
        ["my card was stolen", "someone took my credit card", "how do I change my PIN"]
    )
    assert stolen @ taken > stolen @ pin + 0.1


def test_paraphrases_are_nearest_neighbours(onnx_encoder: SentenceEncoder) -> None:
    vectors = onnx_encoder.encode(SUPPORT_TEXTS)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    nearest = {SUPPORT_TEXTS[i]: SUPPORT_TEXTS[j] for i, j in enumerate(similarity.argmax(axis=1))}
    assert nearest["the app crashes when I open it"] == "the mobile app keeps closing on startup"
    assert (
        nearest["there is a duplicate payment on my statement"]
        == "I was charged twice for one order"
    )
    assert nearest["please cancel my subscription"] == "I want to stop my membership"
    assert nearest["where is my parcel"] == "my delivery has not arrived yet"


# -- the static table ---------------------------------------------------------------------------


def test_static_table_builds_in_well_under_a_minute(static_build_cpu_seconds: float) -> None:
    # CPU seconds, not wall time: other work on the shared cores stretches the wall clock.
    assert static_build_cpu_seconds < 45


def test_static_rows_live_in_the_encoders_space(
    static_encoder: StaticEncoder, onnx_encoder: SentenceEncoder
) -> None:
    rough, full = static_encoder.encode(SUPPORT_TEXTS), onnx_encoder.encode(SUPPORT_TEXTS)
    assert rough.shape == full.shape
    np.testing.assert_allclose(np.linalg.norm(rough, axis=1), 1.0, atol=1e-5)
    agreement = (rough * full).sum(axis=1)
    assert agreement.mean() > 0.4
    # Each text's full embedding is closer to its own static row than to the others'.
    assert ((full @ rough.T).argmax(axis=1) == np.arange(len(SUPPORT_TEXTS))).mean() > 0.8
    assert static_encoder.model_id.startswith(onnx_encoder.model_id + ":static-")


def test_static_encoding_is_cheap(static_encoder: StaticEncoder) -> None:
    text = ["my card was stolen yesterday, please block it"]
    static_encoder.encode(text)
    started = time.perf_counter()
    for _ in range(200):
        static_encoder.encode(text)
    assert (time.perf_counter() - started) / 200 < 1e-3


# -- inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["onnx_encoder", "static_encoder"])
def test_texts_without_word_pieces_get_the_zero_row(
    name: str, request: pytest.FixtureRequest
) -> None:
    encoder: TextEncoder = request.getfixturevalue(name)
    vectors = encoder.encode(["", "   \n\t", "\x00\x01\x07\x1b", "card"])
    assert not vectors[:3].any()
    assert np.linalg.norm(vectors[3]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["onnx_encoder", "static_encoder"])
def test_odd_text_gets_unit_rows(name: str, request: pytest.FixtureRequest) -> None:
    encoder: TextEncoder = request.getfixturevalue(name)
    odd = [
        "🙂🔥💳",
        "ab\ud800cd",
        "zero\u200bwidth",
        "我的信用卡被盗了",
        "\x00card\x07 stolen",
        "ÄÖÜ ß",
    ]
    vectors = encoder.encode(odd)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


@pytest.mark.parametrize("name", ["onnx_encoder", "static_encoder"])
def test_very_long_text_is_read_up_to_the_window(name: str, request: pytest.FixtureRequest) -> None:
    encoder: TextEncoder = request.getfixturevalue(name)
    words = [f"word{index % 97}" for index in range(200_000)]
    started = time.perf_counter()
    (huge,) = encoder.encode([" ".join(words)])
    assert time.perf_counter() - started < 2
    (prefix,) = encoder.encode([" ".join(words[:400])])
    np.testing.assert_allclose(huge, prefix, atol=1e-5)


@pytest.mark.parametrize("name", ["onnx_encoder", "static_encoder"])
def test_non_text_is_refused_by_name(name: str, request: pytest.FixtureRequest) -> None:
    encoder: TextEncoder = request.getfixturevalue(name)
    with pytest.raises(TypeError, match="not one string"):
        encoder.encode("my card was stolen")
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        encoder.encode(["fine", None])  # type: ignore[list-item]


# -- windows ------------------------------------------------------------------------------------


def test_short_text_is_one_window_equal_to_encode(onnx_encoder: SentenceEncoder) -> None:
    windows = onnx_encoder.encode_windows("my card was stolen")
    assert windows.shape == (1, 384)
    np.testing.assert_allclose(
        windows[0], onnx_encoder.encode(["my card was stolen"])[0], atol=1e-6
    )
    assert not onnx_encoder.encode_windows("  ").any()


def test_long_text_windows_overlap_and_find_the_buried_report(
    onnx_encoder: SentenceEncoder,
) -> None:
    recipe = (
        "To bake the bread, mix flour, water, salt and yeast, knead the dough for ten minutes, "
        "let it rise for an hour and bake it at two hundred degrees. "
    )
    report = "Also, my credit card was stolen on the train and someone used it to pay online. "
    text = recipe * 15 + report + recipe * 15
    windows = onnx_encoder.encode_windows(text)
    pieces = len(model_source(EncoderSettings()).tokenizer(100_000).encode(text).ids) - 2
    stride = onnx_encoder.max_tokens - 2 - onnx_encoder.window_overlap_tokens
    expected = 1 + -(-(pieces - (onnx_encoder.max_tokens - 2)) // stride)
    assert len(windows) == expected
    np.testing.assert_allclose(windows[0], onnx_encoder.encode([text])[0], atol=1e-6)
    (query,) = onnx_encoder.encode(["someone took my credit card"])
    scores = windows @ query
    assert scores.max() > scores[0] + 0.2


def test_windows_stop_at_max_windows(
    settings: EncoderSettings, onnx_encoder: SentenceEncoder
) -> None:
    capped = load_encoder(settings.model_copy(update={"max_windows": 3}))
    text = "the app crashes when I open it. " * 500
    assert len(capped.encode_windows(text)) == 3
    assert len(onnx_encoder.encode_windows(text)) > 3


# -- derived files: deterministic, content-addressed --------------------------------------------


def test_cached_fp32_model_is_the_graph_of_the_weights(
    settings: EncoderSettings, onnx_encoder: SentenceEncoder
) -> None:
    (cached,) = [
        path for path in cached_files(settings.cache_dir, ".onnx") if ".fp32-" in path.name
    ]
    rebuilt = graph.build_model(model_source(settings).weights())
    assert hashlib.sha256(rebuilt).hexdigest() == hashlib.sha256(cached.read_bytes()).hexdigest()


def test_built_files_are_byte_identical_across_builds(tiny_model: Path, tmp_path: Path) -> None:
    contents = []
    for cache in (tmp_path / "first", tmp_path / "second"):
        settings = tiny_settings(tiny_model, cache)
        load_encoder(settings)
        load_encoder(settings.model_copy(update={"quantized": True}))
        load_static_encoder(settings)
        files = cached_files(cache, ".onnx") + cached_files(cache, ".npy")
        assert len(files) == 3
        contents.append({path.name: path.read_bytes() for path in files})
    assert contents[0] == contents[1]


def test_tiny_model_agrees_across_runtimes_and_builds_its_own_files(
    tiny_model: Path, tmp_path: Path
) -> None:
    settings = tiny_settings(tiny_model, tmp_path / "cache")
    onnx, reference = (
        load_encoder(settings),
        load_encoder(settings.model_copy(update={"runtime": "numpy"})),
    )
    texts = ["my card was stolen", "the app crashes when i open it", "unknown words here", ""]
    np.testing.assert_allclose(onnx.encode(texts), reference.encode(texts), atol=1e-5)
    assert onnx.dim == TINY_HIDDEN
    assert onnx.max_tokens == 16
    assert onnx.model_id.startswith("tiny-bert@")
    assert all(path.name.startswith("tiny-bert.") for path in (tmp_path / "cache").iterdir())


def test_other_weights_are_built_under_another_name(tiny_model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = load_encoder(tiny_settings(tiny_model, cache))
    save_file(tiny_tensors(seed=8), str(tiny_model / "model.safetensors"))
    after = load_encoder(tiny_settings(tiny_model, cache))
    assert len(cached_files(cache, ".onnx")) == 1  # the superseded file is removed
    assert before.model_id != after.model_id
    assert not np.allclose(before.encode(["my card"]), after.encode(["my card"]))


def test_changed_builder_code_makes_the_cache_stale(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    load_encoder(tiny_settings(tiny_model, cache))
    (before,) = cached_files(cache, ".onnx")
    unrelated = [cache / "notes.onnx", cache / "tiny-bert.fp32-draft.onnx", cache / "other.npz"]
    for path in unrelated:
        path.write_bytes(b"kept")
    monkeypatch.setattr(load, "source_code_hash", lambda *modules: "another builder")
    load_encoder(tiny_settings(tiny_model, cache))
    (after,) = [path for path in cached_files(cache, ".onnx") if path not in unrelated]
    assert after != before
    assert not manifest_path(before).exists()
    assert all(path.read_bytes() == b"kept" for path in unrelated)


@pytest.mark.parametrize("suffix", [".onnx", ".npy"])
def test_altered_cached_file_is_rebuilt(tiny_model: Path, tmp_path: Path, suffix: str) -> None:
    cache = tmp_path / "cache"
    settings = tiny_settings(tiny_model, cache)
    load_encoder(settings)
    load_static_encoder(settings)
    (path,) = cached_files(cache, suffix)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    load_encoder(settings)
    load_static_encoder(settings)
    assert path.read_bytes() == original


@pytest.mark.parametrize("damage", ["truncate", "manifest", "delete"])
def test_unverifiable_cache_is_refused_when_building_is_off(
    tiny_model: Path, tmp_path: Path, damage: str
) -> None:
    cache = tmp_path / "cache"
    load_encoder(tiny_settings(tiny_model, cache))
    (path,) = cached_files(cache, ".onnx")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "manifest":
        manifest_path(path).unlink()
    else:
        path.unlink()
    with pytest.raises(EncoderLoadError) as raised:
        load_encoder(tiny_settings(tiny_model, cache, allow_build=False))
    assert raised.value.path == path
    assert "allow_build=false" in str(raised.value)


@pytest.mark.parametrize("suffix", [".onnx", ".npy"])
def test_corrupt_cached_file_with_a_matching_manifest_stops_start_up(
    tiny_model: Path, tmp_path: Path, suffix: str
) -> None:
    cache = tmp_path / "cache"
    settings = tiny_settings(tiny_model, cache)
    load_encoder(settings)
    load_static_encoder(settings)
    (path,) = cached_files(cache, suffix)
    garbage = b"\x00 not a model \xff" * 8
    path.write_bytes(garbage)
    manifest = json.loads(manifest_path(path).read_text())
    manifest["sha256"] = hashlib.sha256(garbage).hexdigest()
    manifest_path(path).write_text(json.dumps(manifest))
    with pytest.raises(EncoderLoadError) as raised:
        load_encoder(settings) if suffix == ".onnx" else load_static_encoder(settings)
    assert raised.value.path == path


# -- model files: missing or corrupt ------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "content", "reason"),
    [
        ("model.safetensors", None, "file not found"),
        (
            "model.safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00garbage",
            "not a valid safetensors",
        ),
        ("tokenizer.json", None, "file not found"),
        ("tokenizer.json", b'{"version": "1.0", "model": 3}', "not a valid tokenizer"),
        ("config.json", b"{not json", "not valid JSON"),
        ("config.json", b'{"model_type": "gpt2"}', "only 'bert'"),
        ("1_Pooling/config.json", None, "file not found"),
        ("1_Pooling/config.json", b'{"pooling_mode_cls_token": true}', "only mean pooling"),
    ],
)
@pytest.mark.parametrize("runtime", ["onnx", "numpy"])
def test_missing_or_corrupt_model_file_names_the_path(
    tiny_model: Path, tmp_path: Path, file: str, content: bytes | None, reason: str, runtime: str
) -> None:
    target = tiny_model / file
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)
    with pytest.raises(EncoderLoadError, match=reason) as raised:
        load_encoder(tiny_settings(tiny_model, tmp_path / "cache", runtime=runtime))
    assert raised.value.path == target
    assert str(target) in str(raised.value)


def test_weights_missing_a_tensor_name_it(tiny_model: Path, tmp_path: Path) -> None:
    tensors = tiny_tensors(seed=7)
    del tensors["encoder.layer.1.output.dense.weight"]
    save_file(tensors, str(tiny_model / "model.safetensors"))
    with pytest.raises(
        EncoderLoadError, match=r"'encoder\.layer\.1\.output\.dense\.weight' is missing"
    ):
        load_encoder(tiny_settings(tiny_model, tmp_path / "cache"))


def test_missing_model_directory(tmp_path: Path) -> None:
    with pytest.raises(EncoderLoadError, match="model directory not found") as raised:
        load_encoder(EncoderSettings(model_dir=tmp_path / "nowhere", cache_dir=tmp_path))
    assert raised.value.path == tmp_path / "nowhere"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"max_tokens": 41}, "exceeds the model's 40 positions"),
        ({"window_overlap_tokens": 14}, "leaves no new word piece"),
    ],
)
def test_window_settings_beyond_the_model_are_refused(
    tiny_model: Path, tmp_path: Path, overrides: dict[str, int], reason: str
) -> None:
    with pytest.raises(EncoderLoadError, match=reason):
        load_encoder(tiny_settings(tiny_model, tmp_path / "cache", **overrides))


# -- settings and the build command --------------------------------------------------------------


def test_build_command_prebuilds_every_derived_file(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RISKRELAY_INTAKE_ENCODER__MODEL_DIR", str(tiny_model))
    monkeypatch.setenv("RISKRELAY_INTAKE_ENCODER__CACHE_DIR", str(cache))
    monkeypatch.setenv("RISKRELAY_INTAKE_ENCODER__WINDOW_OVERLAP_TOKENS", "4")
    assert encoder_cli.main(["build"]) == 0
    assert len(cached_files(cache, ".onnx")) == 2
    assert len(cached_files(cache, ".npy")) == 1
    assert "static table: ready" in capsys.readouterr().out
    # Everything verifies, so a service may start with building off.
    load_encoder(tiny_settings(tiny_model, cache, allow_build=False, quantized=True))


def test_build_command_reports_a_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RISKRELAY_INTAKE_ENCODER__MODEL_DIR", str(tmp_path / "nowhere"))
    assert encoder_cli.main(["build"]) == 1
    assert "model directory not found" in capsys.readouterr().err


def test_fewer_layers_is_another_encoder(
    settings: EncoderSettings, onnx_encoder: SentenceEncoder, numpy_encoder: SentenceEncoder
) -> None:
    cut = settings.model_copy(update={"quantized": False, "layers": 2})
    onnx_cut = load_encoder(cut)
    numpy_cut = load_encoder(cut.model_copy(update={"runtime": "numpy", "threads": 1}))
    assert onnx_cut.model_id == onnx_encoder.model_id + ":L2"
    assert numpy_cut.model_id == numpy_encoder.model_id + ":L2"
    texts = SUPPORT_TEXTS[:4]
    # Both runtimes run the same two layers, and they are not the six layers' rows.
    np.testing.assert_allclose(onnx_cut.encode(texts), numpy_cut.encode(texts), atol=1e-4)
    assert (onnx_cut.encode(texts) * onnx_encoder.encode(texts)).sum(axis=1).max() < 0.99


def test_more_layers_than_the_model_has_stop_start_up(settings: EncoderSettings) -> None:
    with pytest.raises(EncoderLoadError, match="layers 7 exceeds the model's 6"):
        load_encoder(settings.model_copy(update={"layers": 7}))
