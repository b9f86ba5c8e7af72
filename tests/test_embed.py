"""Embedding: ONNX Runtime gives the vectors PyTorch gives, and sentence vectors come from the
chunk's own forward pass."""

from __future__ import annotations

import numpy as np

from qa.chunk import token_counter

TEXTS = [
    "Employees receive 28 days of paid annual leave per calendar year.",
    "The Harbour Agreement was signed with Nordic Rail on 4 May 2021 in Oslo. It gives a 30% discount.",
    "Kurz.",
]


def test_the_default_model_runs_in_onnx_runtime(embedder):
    assert embedder.onnx is not None  # without `onnx` installed it would silently fall back to PyTorch


def test_onnx_query_vectors_match_pytorch(embedder):
    ours = embedder.encode_queries(TEXTS)
    reference = embedder.model.encode_query(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(np.sum(ours * reference, axis=1), 1.0, atol=1e-4)


def test_document_vectors_match_pytorch_and_sentence_vectors_are_normalized(embedder):
    spans = [[(0, len(TEXTS[0]))], [(0, 73), (74, len(TEXTS[1]))], [(0, 5)]]
    vectors, sentences = embedder.encode_documents(TEXTS, spans)
    reference = embedder.model.encode_document(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(np.sum(vectors * reference, axis=1), 1.0, atol=1e-4)
    assert [len(s) for s in sentences] == [1, 2, 1]
    for s in sentences:
        np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-4)
    # a one-sentence text: its sentence vector is its mean-pooled vector, bar the [CLS]/[SEP] tokens
    assert float(sentences[0][0] @ vectors[0]) > 0.98


def test_token_counter_agrees_with_the_tokenizer(embedder):
    count = token_counter(embedder.tokenizer)
    for text in TEXTS + ["", "naïve café – “quoted” text", "a " * 300]:
        assert count(text) == len(embedder.tokenizer.tokenize(text))
