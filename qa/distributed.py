"""Work spread over a Ray cluster with Ray Data: rows go out to actors that each load what they need
once (the model, an index) and come back, as they finish, to the driver, which puts them back in
order. `qa index --ray` embeds its chunks this way (RayEmbedder); `qa batch --ray` answers its
questions this way (qa.batch.ray_answers).

Ray is an optional extra and is imported only when `--ray` is used. The driver ships its own qa
package to the workers (runtime_env py_modules), so every node runs the driver's code; each node
needs qa's dependencies installed, and the model, the corpus's index and any local model folder at
the same paths. Workers are told to stay offline (HF_HUB_OFFLINE), whatever their shell said.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

import qa
from qa.config import DEFAULT_PRECISION
from qa.embed import Embedder
from qa.errors import RAY_EXTRA, QAError, RayUnavailable, one_line

WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
EMBED_BATCH = 128  # chunks per task: large enough to group by length, small enough to spread the work


def require_ray():
    """The ray module, or the one-line error naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayUnavailable(f"--ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def connect(address: str, **init_options) -> int:
    """Join the Ray `address` names ("local": this machine's, started if none runs), once per
    process (a Ray already joined is kept), and return the CPUs it has."""
    ray = require_ray()
    if not ray.is_initialized():
        runtime_env = {"env_vars": WORKER_ENV, "py_modules": [str(Path(qa.__file__).parent)]}
        try:
            ray.init(address=None if address == "local" else address, runtime_env=runtime_env,
                     logging_level=logging.ERROR, log_to_driver=False, **init_options)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as exc:
            hint = ""
            if "AuthenticationError" in str(exc.__cause__) or "InvalidAuthToken" in str(exc.__cause__):
                hint = " (the cluster checks a token: set RAY_AUTH_MODE=token and copy its ~/.ray/auth_token here)"
            raise RayUnavailable(f"cannot start or reach Ray at {address!r}: {one_line(exc)}{hint}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows its own
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # its errors reach us as exceptions
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def on_workers(address: str, rows: Sequence[dict], worker: type, worker_options: dict,
               batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Each batch of `rows` through `worker(**worker_options)(batch)`, one actor per CPU (at most
    one per batch), results yielded as they arrive: in any order, so rows carry their own number.
    A worker's QAError is raised with its message; any other failure as one RayUnavailable line."""
    ray = require_ray()
    cpus = connect(address)
    batches = math.ceil(len(rows) / batch_size)
    dataset = ray.data.from_items(list(rows), override_num_blocks=batches).map_batches(
        worker, fn_constructor_kwargs=worker_options, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(cpus, batches)), num_cpus=1,
    )
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
    except Exception as exc:
        raise _reason(exc) from None


def _reason(exc: BaseException) -> QAError:
    """The one-line error a worker raised, or the whole failure on one line. Ray Data passes a
    worker's exception back only as the text of its traceback, whose last line is the error's."""
    said = re.findall(r"^qa\.errors\.\w+: (.+)$", str(exc), re.M)
    return QAError(said[-1]) if said else RayUnavailable(f"the Ray job failed: {one_line(exc)}")


def worker_path(text: str) -> str:
    """A path as workers must see it: absolute (their working folder is not the driver's)."""
    return os.path.abspath(text) if text and text != "off" and Path(text).exists() else text


class DocumentEncoder:
    """A Ray actor: the model, loaded once, encoding batches of chunks on its one CPU."""

    def __init__(self, model: str, cache: str, precision: str):
        self.model, self.cache, self.precision, self.embedder = model, cache, precision, None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Loaded by the first batch, not the constructor: Ray retries a constructor that fails,
        # and reports it to the terminal; a batch's error ends the job and reaches the driver.
        self.embedder = self.embedder or Embedder(self.model, cache=self.cache, threads=1, precision=self.precision)
        spans = [json.loads(s) for s in batch["spans"]]
        vectors, sentences = self.embedder.encode_documents(list(batch["text"]), spans)
        return {"i": batch["i"], "vector": vectors,
                "sentences": np.array([s.astype(np.float32).tobytes() for s in sentences], dtype=object)}


class RayEmbedder:
    """An Embedder (for qa.ingest.build) whose document encoding runs on Ray workers. Chunking
    stays on the driver, with a local Embedder's tokenizer and limits; Ray is joined only when
    there is something to embed."""

    def __init__(self, address: str, name: str, cache: str = "", precision: str = DEFAULT_PRECISION):
        require_ray()  # fail before reading the corpus
        self.address, self.name, self.cache, self.precision = address, name, cache, precision
        self._local: Embedder | None = None

    @property
    def local(self) -> Embedder:
        if self._local is None:
            self._local = Embedder(self.name, cache=self.cache, precision=self.precision)
        return self._local

    @property
    def dimension(self) -> int:
        return self.local.dimension

    @property
    def max_tokens(self) -> int:
        return self.local.max_tokens

    @property
    def counting_tokenizer(self):
        return self.local.counting_tokenizer

    def encode_documents(self, texts: Sequence[str], sentence_spans: Sequence[Sequence[tuple[int, int]]],
                         progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """What Embedder.encode_documents returns, computed by the workers, in the texts' order."""
        dimension = self.dimension
        vectors = np.zeros((len(texts), dimension), dtype=np.float32)
        sentences: list[np.ndarray] = [np.zeros((0, dimension), np.float32)] * len(texts)
        if not texts:
            return vectors, sentences
        rows = [{"i": i, "text": t, "spans": json.dumps([list(s) for s in spans])}
                for i, (t, spans) in enumerate(zip(texts, sentence_spans))]
        options = {"model": worker_path(self.name), "cache": worker_path(self.cache), "precision": self.precision}
        for batch in on_workers(self.address, rows, DocumentEncoder, options, EMBED_BATCH):
            for i, vector, packed in zip(batch["i"], batch["vector"], batch["sentences"]):
                vectors[i] = vector
                sentences[i] = np.frombuffer(packed, dtype=np.float32).reshape(-1, dimension)
            if progress is not None:
                progress(len(batch["i"]))
        return vectors, sentences
