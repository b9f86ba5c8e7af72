"""A model's transformer in ONNX Runtime: exported from the PyTorch weights once, then kept in a
cache folder so later processes open it without importing PyTorch at all.

Each export is kept twice: as traced (float32), and with 8-bit weights (int8, see `quantize`),
which runs the passes about 1.5x faster for vectors within a cosine of 0.997 of float32's.

Exporting traces the model (a second or two, with torch and the weights in memory); opening a
cached export takes a fraction of that and leaves torch out of the process, so `qa ask` starts
fast and `qa serve` stays small. An entry is keyed by the model folder's files (names, sizes,
modification times; for a hub name, its snapshot in the local Hugging Face cache) and the versions
of the libraries that shape the export. It is written to a temporary folder and renamed into
place, so a crash, or two processes exporting at once, never leave a half-written entry; an entry
that fails to open is exported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 3  # bump when what an entry holds, or how it is exported, changes (3: an int8 copy; 2: eager attention)
MODEL_FILES = {"float32": "model.onnx", "int8": "model-int8.onnx"}
ABANDONED_SECONDS = 3600.0  # an export folder this old belongs to no running process
UNUSED_SECONDS = 90 * 86400.0  # an entry not opened for this long is removed by the next export
_SHAPING = ("torch", "transformers", "sentence-transformers", "onnxruntime")


@dataclass(frozen=True)
class ModelFacts:
    """What encoding needs to know of the model without loading it."""

    dimension: int
    max_tokens: int
    inputs: list[str]  # the tokenizer outputs the transformer takes, in order
    pad_token_id: int


class OnnxTransformer:
    """Padded token ids in, token embeddings out. Safe to call from several threads at once."""

    def __init__(self, path: Path, facts: ModelFacts, one_text_per_pass: bool = False):
        """`one_text_per_pass`: the int8 model quantizes its activations with one scale per pass, so
        a text's vector would depend on the texts (and padding) sharing its pass: it takes one at a
        time, and a chunk's vector is the same in any build."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread per pass: the caller runs one pass per CPU (see qa.embed).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs, self.pad_token_id = facts.inputs, facts.pad_token_id
        self.one_text_per_pass = one_text_per_pass

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {n: inputs[n] for n in self.inputs})[0]


def cache_root(chosen: str = "") -> Path | None:
    """Where exports are kept: the folder chosen (the cache setting), else $XDG_CACHE_HOME/qa or
    ~/.cache/qa; None if "off"."""
    chosen = chosen.strip()
    if chosen.lower() in ("off", "none", "0"):
        return None
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa"


def _model_folder(name: str) -> Path | None:
    """The folder holding the model's files: the path given, or a hub name's snapshot in the
    local Hugging Face cache (what sentence-transformers loads offline); None if neither."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    for repo in (name,) if "/" in name else (name, f"sentence-transformers/{name}"):
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # not in the local cache, or not a repository name at all
            continue
    return None


def cache_entry(model_path: str, cache: str = "") -> Path | None:
    """The cache folder of a model's export (which may not exist yet), or None when there is no
    cache or nothing on disk to key the model by."""
    root = cache_root(cache)
    folder = _model_folder(model_path) if root is not None else None
    if folder is None:
        return None
    files = sorted(
        (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    )
    versions = {}
    for package in _SHAPING:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    key = json.dumps([FORMAT, str(folder.resolve()), files, versions])
    return root / "onnx" / hashlib.sha256(key.encode()).hexdigest()[:32]


def _open(folder: Path, precisions: tuple[str, ...]):
    """({precision: OnnxTransformer}, tokenizer, ModelFacts) from a folder holding an export, the
    model opened in each precision given (each costs its own memory); the tokenizer is a
    `tokenizers.Tokenizer` set to truncate at the model's limit."""
    from tokenizers import Tokenizer

    facts = ModelFacts(**json.loads((folder / "facts.json").read_text(encoding="utf-8")))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(facts.max_tokens)
    return ({p: OnnxTransformer(folder / MODEL_FILES[p], facts, one_text_per_pass=p == "int8") for p in precisions},
            tokenizer, facts)


def open_cached(entry: Path | None, precisions: tuple[str, ...]):
    """What `_open` gives for the cache entry, or None if there is no usable one."""
    if entry is None or not (entry / "facts.json").is_file():
        return None
    try:
        opened = _open(entry, precisions)
    except Exception as exc:  # damaged or from an incompatible version: export again
        log.warning("exporting the model again: its cached ONNX copy does not open (%s)", type(exc).__name__)
        return None
    try:
        os.utime(entry / "facts.json")  # last used now: see _remove_abandoned
    except OSError:  # a read-only cache still serves
        pass
    return opened


def export(model, entry: Path | None, max_tokens: int, precisions: tuple[str, ...]):
    """Export a loaded SentenceTransformer's transformer to ONNX Runtime, keep it as the cache
    entry if there is one, and return what `_open` gives for those precisions and float32."""
    import torch

    hf_tokenizer = model.tokenizer
    sample = hf_tokenizer(["a b", "c"], padding=True, return_tensors="pt")
    names = list(sample.keys())
    if not set(names) <= {"input_ids", "attention_mask", "token_type_ids"}:
        raise ValueError(f"the tokenizer gives inputs {names}")
    transformer = model[0].model.eval()
    facts = ModelFacts(int(model.get_embedding_dimension()), max_tokens, names, int(hf_tokenizer.pad_token_id))

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs):
            return self.transformer(**dict(zip(names, inputs))).last_hidden_state

    workspace = _workspace(entry)
    attention = _plain_attention(transformer)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                TokenEmbeddings(), tuple(sample[n] for n in names), str(workspace / "model.onnx"),
                input_names=names, output_names=["token_embeddings"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]},
                opset_version=17, dynamo=False,
            )
        quantize(workspace / MODEL_FILES["float32"], workspace / MODEL_FILES["int8"])
        (workspace / "tokenizer.json").write_text(hf_tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
        (workspace / "facts.json").write_text(json.dumps(asdict(facts)), encoding="utf-8")
        # float32 is always opened, to check the export runs; each session holds its model in memory,
        # so the files may move
        opened = _open(workspace, tuple(dict.fromkeys(("float32", *precisions))))
        if entry is not None:
            _publish(workspace, entry)
        return opened
    finally:
        if attention is not None:
            transformer.set_attn_implementation(attention)
        shutil.rmtree(workspace, ignore_errors=True)


def quantize(source: Path, target: Path) -> None:
    """Write the model with 8-bit weights (per output channel, 7 bits of range, so that CPUs
    without VNNI cannot saturate) and 8-bit activations, quantized as each pass runs. Two things
    stay float32: the embedding tables (lookups, with no arithmetic to save), and each
    down-projection (a MatMul with more inputs than outputs: a feed-forward block's second layer,
    whose input, the activation function's skewed output, loses the most to 8 bits)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    shapes = {w.name: tuple(w.dims) for w in graph.initializer}
    to_quantize = [
        node.name for node in graph.node
        if node.op_type == "MatMul" and len(weight := shapes.get(node.input[1], ())) == 2 and weight[0] <= weight[1]
    ]
    quiet = logging.Filter("not the root logger")  # the quantizer's advice to preprocess, through the root logger
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul"], nodes_to_quantize=to_quantize)
    finally:
        logging.getLogger().removeFilter(quiet)


def _plain_attention(transformer) -> str | None:
    """Switch the transformer to its plain ("eager") attention for the export, and return the
    implementation to switch back to (None if it was not switched). The default, PyTorch's fused
    attention (sdpa), exports as a graph that guards every attention score with IsNaN and Where:
    ONNX Runtime spends about 15% more time on it for the same vectors (to 1e-6)."""
    current = getattr(transformer.config, "_attn_implementation", None)
    if current in (None, "eager") or not hasattr(transformer, "set_attn_implementation"):
        return None
    try:
        transformer.set_attn_implementation("eager")
    except (ValueError, ImportError):  # a model without it keeps what it has
        return None
    return current


def _workspace(entry: Path | None) -> Path:
    """A fresh folder to export into: beside the entry (so it can be renamed into place), or a
    temporary one when the cache cannot be written."""
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned(entry.parent)
            return Path(tempfile.mkdtemp(prefix=".export-", dir=entry.parent))
        except OSError as exc:
            log.info("not caching the ONNX export: %s", exc)
    return Path(tempfile.mkdtemp(prefix="qa-onnx-"))


def _remove_abandoned(folder: Path) -> None:
    """Exports a killed process left behind over an hour ago, and entries no process has opened
    for 90 days (a model no longer used, or libraries since upgraded): about 160 MB each for the
    default model (float32 and int8)."""
    now = time.time()
    for leftover in folder.glob(".export-*"):
        _remove_if_older(leftover, leftover, now - ABANDONED_SECONDS)
    for entry in folder.iterdir():
        if not entry.name.startswith("."):
            _remove_if_older(entry, entry / "facts.json", now - UNUSED_SECONDS)


def _remove_if_older(folder: Path, stamp: Path, than: float) -> None:
    try:
        if stamp.stat().st_mtime < than:
            shutil.rmtree(folder, ignore_errors=True)
    except OSError:  # gone already, or an entry without facts (being replaced): leave it
        pass


def _publish(workspace: Path, entry: Path) -> None:
    try:
        for name in (*MODEL_FILES.values(), "tokenizer.json", "facts.json"):
            with open(workspace / name, "rb") as f:
                os.fsync(f.fileno())
        if entry.exists():  # a damaged entry (or one another process just wrote): set it aside
            old = entry.with_name(f"{entry.name}.old-{os.getpid()}")
            os.rename(entry, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(workspace, entry)
    except OSError as exc:  # another process won the race, or the disk is full: no cache this time
        log.info("not caching the ONNX export: %s", exc)
