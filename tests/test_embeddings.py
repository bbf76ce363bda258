"""Embeddings: numpy MiniLM against sentence-transformers, the OpenAI client against a fake server,
and the circuit breaker on its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from tests.fakes import FakeOpenAI
from torale.ai.breaker import CircuitBreaker, CircuitOpenError, CircuitState
from torale.ai.embeddings import (
    Embedder,
    EmbeddingError,
    LocalMiniLM,
    OpenAIEmbedder,
    ShapeMemo,
    get_embedder,
    reset_embedders,
)
from torale.config import Settings

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


# --- local model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> LocalMiniLM:
    model = LocalMiniLM()
    model.load()
    return model


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = json.loads(REFERENCE.read_text())
    texts = [item["text"] for item in data["items"]]
    vectors = np.asarray([item["embedding"] for item in data["items"]], dtype=np.float32)
    return texts, vectors


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


async def test_minilm_matches_sentence_transformers(
    minilm: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, expected = reference
    assert any(len(t.split()) > 256 for t in texts), "reference must exercise truncation"

    got = await minilm.embed(texts)

    assert got.shape == (len(texts), 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = _cosines(got, expected)
    for text, cosine in zip(texts, cosines, strict=True):
        assert cosine > 0.9999, f"cosine {cosine:.6f} for {text[:40]!r}"


async def test_minilm_is_independent_of_batch_order_and_size(
    minilm: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, _ = reference
    together = await minilm.embed(texts)
    permutation = np.random.default_rng(3).permutation(len(texts))
    shuffled = await minilm.embed([texts[i] for i in permutation])
    one_by_one = np.vstack([await minilm.embed([t]) for t in texts])

    np.testing.assert_allclose(shuffled, together[permutation], atol=1e-5)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)


async def test_minilm_small_internal_batches_agree(
    minilm: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, _ = reference
    tiny = LocalMiniLM(batch_size=3, max_batch_tokens=300, ffn_chunk_rows=7)
    np.testing.assert_allclose(await tiny.embed(texts), await minilm.embed(texts), atol=1e-5)


async def test_minilm_empty_input_and_protocol(minilm: LocalMiniLM) -> None:
    empty = await minilm.embed([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32
    as_protocol: Embedder = minilm  # checked statically by mypy
    assert as_protocol.dims == 384
    assert minilm.model_name == "all-MiniLM-L6-v2"
    assert minilm.dims == 384


async def test_minilm_similar_texts_are_closer(minilm: LocalMiniLM) -> None:
    a, b, c = await minilm.embed(
        [
            "The iPhone 16 goes on sale on September 20.",
            "Apple's new iPhone will be available from 20 September.",
            "Heavy rain is expected in Scotland this weekend.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


async def test_a_text_that_differs_only_in_numbers_reuses_a_vector(minilm: LocalMiniLM) -> None:
    memo = ShapeMemo(minilm, size=2)
    (first,) = await memo.embed(["Updated 4 - views 33"], scope="user-a")
    again, other = await memo.embed(["Updated 5 - views 40", "Sold out"], scope="user-a")
    np.testing.assert_array_equal(again, first)  # no model run: the same shape
    (own,) = await minilm.embed(["Updated 5 - views 40"])
    (theirs,) = await memo.embed(["Updated 5 - views 40"], scope="user-b")
    np.testing.assert_allclose(theirs, own, atol=1e-6)  # another user never shares a vector
    (fresh,) = await memo.embed(["Updated 6 - views 47"], scope="user-a")  # size 2: evicted
    np.testing.assert_allclose(fresh, (await minilm.embed(["Updated 6 - views 47"]))[0], atol=1e-6)
    assert (await memo.embed([], scope="user-a")).shape == (0, 384)
    assert float(other @ first) < 0.9  # another shape is embedded for itself


async def test_minilm_concurrent_calls_are_safe(
    minilm: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, _ = reference
    expected = await minilm.embed(texts)
    results = await asyncio.gather(*(minilm.embed(texts) for _ in range(4)))
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_minilm_loads_once_under_concurrent_first_use() -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = LocalMiniLM()
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: model._get_model(), range(8)))
    assert all(m is loaded[0] for m in loaded)


async def test_minilm_missing_files_raise_embedding_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="cannot load"):
        await LocalMiniLM(model_dir=tmp_path).embed(["x"])


# --- OpenAI embedder against the fake server ----------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers the requested delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _embedder(fake: FakeOpenAI, **kwargs: Any) -> OpenAIEmbedder:
    options: dict[str, Any] = {
        "api_key": fake.api_key or "sk-any",
        "base_url": fake.base_url,
        "timeout": 5.0,
    }
    options.update(kwargs)
    return OpenAIEmbedder(**options)


async def test_openai_happy_path_batches_and_keeps_order(fake: FakeOpenAI) -> None:
    texts = [f"passage number {i}" for i in range(7)] + [""]
    embedder = _embedder(fake, batch_size=3)

    vectors = await embedder.embed(texts)

    assert embedder.model_name == "text-embedding-3-small"
    assert embedder.dims == 1536
    assert vectors.shape == (8, 1536)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for i in range(7):
        expected = np.asarray(FakeOpenAI.vector_for(texts[i], 1536), dtype=np.float32)
        assert float(vectors[i] @ expected) > 0.99999
    requests = fake.embedding_requests
    assert len(requests) == 3
    assert sorted(len(r.body["input"]) for r in requests) == [2, 3, 3]
    assert all(r.body["model"] == "text-embedding-3-small" for r in requests)
    assert all(r.headers["authorization"] == f"Bearer {fake.api_key}" for r in requests)
    assert all("" not in r.body["input"] for r in requests)  # the API rejects empty strings
    await embedder.aclose()


async def test_openai_learns_dims_from_first_response(fake: FakeOpenAI) -> None:
    fake.embedding_dims = 64
    embedder = _embedder(fake, model="my-local-embedder")
    with pytest.raises(EmbeddingError, match="not known"):
        _ = embedder.dims
    vectors = await embedder.embed(["a", "b"])
    assert vectors.shape == (2, 64)
    assert embedder.dims == 64
    assert await embedder.resolve_dims() == 64
    assert len(fake.embedding_requests) == 1

    probing = _embedder(fake, model="another-embedder")
    assert await probing.resolve_dims() == 64


async def test_openai_error_in_one_of_many_batches(fake: FakeOpenAI) -> None:
    fake.queue_embeddings(status=400)
    embedder = _embedder(fake, batch_size=2, max_concurrency=1, sleep=RecordingSleep())

    with pytest.raises(EmbeddingError, match="HTTP 400"):
        await embedder.embed([f"text {i}" for i in range(6)])


async def test_openai_retries_500_then_succeeds(fake: FakeOpenAI) -> None:
    fake.queue_embeddings(status=500)
    fake.queue_embeddings(status=503)
    sleep = RecordingSleep()
    embedder = _embedder(fake, sleep=sleep, backoff_base=0.5)

    vectors = await embedder.embed(["retry me"])

    assert vectors.shape == (1, 1536)
    assert len(fake.embedding_requests) == 3
    assert len(sleep.delays) == 2
    assert 0.25 <= sleep.delays[0] <= 0.5  # jittered exponential backoff
    assert 0.5 <= sleep.delays[1] <= 1.0
    assert embedder.breaker.state is CircuitState.CLOSED
    assert embedder.breaker.consecutive_failures == 0


async def test_openai_honours_retry_after_on_429(fake: FakeOpenAI) -> None:
    fake.queue_embeddings(status=429, headers={"Retry-After": "7"})
    fake.queue_embeddings(status=429, headers={"retry-after-ms": "1500"})
    sleep = RecordingSleep()
    embedder = _embedder(fake, sleep=sleep)

    vectors = await embedder.embed(["rate limited"])

    assert vectors.shape == (1, 1536)
    assert sleep.delays == [7.0, 1.5]
    assert len(fake.embedding_requests) == 3


async def test_openai_retry_after_is_capped(fake: FakeOpenAI) -> None:
    fake.queue_embeddings(status=429, headers={"Retry-After": "3600"})
    sleep = RecordingSleep()
    await _embedder(fake, sleep=sleep, max_retry_after=10.0).embed(["x"])
    assert sleep.delays == [10.0]


async def test_openai_timeout_is_retried(fake: FakeOpenAI) -> None:
    fake.queue_embeddings(delay=10.0)
    sleep = RecordingSleep()
    embedder = _embedder(fake, sleep=sleep, timeout=0.5)

    vectors = await embedder.embed(["slow"])

    assert vectors.shape == (1, 1536)
    assert len(sleep.delays) == 1


async def test_openai_gives_up_after_max_attempts(fake: FakeOpenAI) -> None:
    for _ in range(3):
        fake.queue_embeddings(status=502)
    embedder = _embedder(fake, sleep=RecordingSleep(), max_attempts=3)

    with pytest.raises(EmbeddingError, match="after 3 attempt") as info:
        await embedder.embed(["x"])

    assert info.value.retryable
    assert "502" in str(info.value)
    assert len(fake.embedding_requests) == 3


async def test_openai_client_error_is_not_retried_and_hides_key(fake: FakeOpenAI) -> None:
    secret = "sk-some-secret-123"
    fake.api_key = secret
    embedder = _embedder(fake, sleep=RecordingSleep())
    echo = {"error": {"message": f"Incorrect API key provided: {secret}.", "type": "auth"}}
    fake.queue_embeddings(status=401, body=echo)  # a server that echoes the key back

    with pytest.raises(EmbeddingError, match="not retryable") as info:
        await embedder.embed(["x"])

    assert not info.value.retryable
    assert "401" in str(info.value)
    assert "Incorrect API key" in str(info.value)
    assert secret not in str(info.value)
    assert secret not in repr(embedder)
    assert len(fake.embedding_requests) == 1
    assert embedder.breaker.consecutive_failures == 0  # the server answered: not an outage


async def test_breaker_opens_rejects_fast_and_recovers(fake: FakeOpenAI) -> None:
    breaker = CircuitBreaker(
        "test-embeddings", failure_threshold=3, reset_timeout=0.05, is_failure=lambda e: True
    )
    embedder = _embedder(fake, sleep=RecordingSleep(), max_attempts=2, breaker=breaker)
    for _ in range(3):
        fake.queue_embeddings(status=500)

    with pytest.raises(EmbeddingError):
        await embedder.embed(["a"])  # two failed attempts
    with pytest.raises(EmbeddingError) as info:
        await embedder.embed(["b"])  # third failure opens the circuit, then rejected
    assert breaker.state is CircuitState.OPEN
    assert isinstance(info.value.__cause__, CircuitOpenError)
    assert info.value.retryable
    sent = len(fake.embedding_requests)
    assert sent == 3

    with pytest.raises(EmbeddingError, match="temporarily disabled"):
        await embedder.embed(["c"])
    assert len(fake.embedding_requests) == sent  # rejected without touching the network

    while breaker.state is CircuitState.OPEN:  # wait out the tiny cool-down
        await asyncio.sleep(0.01)
    vectors = await embedder.embed(["d"])
    assert vectors.shape == (1, 1536)
    assert breaker.state is CircuitState.CLOSED


# --- circuit breaker unit tests (fake clock) ----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Boom(Exception):
    pass


async def _fail() -> None:
    raise Boom("down")


async def _ok() -> str:
    return "ok"


async def test_breaker_state_machine() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("unit", failure_threshold=2, reset_timeout=10.0, clock=clock)

    with pytest.raises(Boom):
        await breaker.call(_fail)
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(_ok) == "ok"  # a success resets the count
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(_fail)
    assert breaker.state is CircuitState.OPEN

    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(_ok)
    assert info.value.retry_after == pytest.approx(10.0)
    assert "unit" in str(info.value)

    clock.now += 10.0
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(Boom):
        await breaker.call(_fail)  # failed trial: open again for a fresh cool-down
    assert breaker.state is CircuitState.OPEN

    clock.now += 10.0
    assert await breaker.call(_ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0


async def test_breaker_half_open_admits_limited_trials() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("unit", failure_threshold=1, reset_timeout=1.0, clock=clock)
    with pytest.raises(Boom):
        await breaker.call(_fail)
    clock.now += 1.0

    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "done"

    trial = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(_ok)  # only one trial at a time
    gate.set()
    assert await trial == "done"
    assert breaker.state is CircuitState.CLOSED


async def test_breaker_ignores_non_failures_and_cancellation() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "unit",
        failure_threshold=1,
        reset_timeout=1.0,
        clock=clock,
        is_failure=lambda exc: not isinstance(exc, ValueError),
    )

    async def bad_request() -> None:
        raise ValueError("400")

    with pytest.raises(ValueError):
        await breaker.call(bad_request)
    assert breaker.state is CircuitState.CLOSED

    async with breaker:
        pass
    with pytest.raises(Boom):
        async with breaker:
            raise Boom()
    assert breaker.state is CircuitState.OPEN

    clock.now += 1.0
    never = asyncio.Event()
    task = asyncio.create_task(breaker.call(never.wait))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.HALF_OPEN  # the cancelled trial freed its slot
    assert await breaker.call(_ok) == "ok"


def test_breaker_validates_arguments() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", reset_timeout=-1)


# --- provider selection -------------------------------------------------------------------------


@pytest.fixture
def clean_embedders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TORALE_EMBEDDING_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    reset_embedders()
    yield
    reset_embedders()


def _settings(**kwargs: Any) -> Settings:
    return Settings(_env_file=None, **kwargs)


@pytest.mark.usefixtures("clean_embedders")
def test_get_embedder_picks_local_without_key() -> None:
    embedder = get_embedder(_settings())
    assert isinstance(embedder, LocalMiniLM)
    assert embedder.dims == 384
    assert get_embedder(_settings()) is embedder  # process-wide instance


@pytest.mark.usefixtures("clean_embedders")
async def test_get_embedder_picks_openai_with_key(fake: FakeOpenAI) -> None:
    settings = _settings(openai_api_key=SecretStr("sk-fake"), openai_base_url=fake.base_url)
    embedder = get_embedder(settings)
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.model_name == "text-embedding-3-small"
    assert embedder.dims == 1536
    assert get_embedder(settings) is embedder
    vectors = await embedder.embed(["hello"])
    assert vectors.shape == (1, 1536)


@pytest.mark.usefixtures("clean_embedders")
def test_get_embedder_explicit_provider() -> None:
    with_key = {"openai_api_key": SecretStr("sk-fake")}
    assert isinstance(get_embedder(_settings(embedding_provider="local", **with_key)), LocalMiniLM)
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        get_embedder(_settings(embedding_provider="openai"))


@pytest.mark.usefixtures("clean_embedders")
def test_get_embedder_is_thread_safe() -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = _settings()
    with ThreadPoolExecutor(8) as pool:
        instances = list(pool.map(lambda _: get_embedder(settings), range(32)))
    assert all(instance is instances[0] for instance in instances)


# --- the fake server's chat endpoint (used by other tests) ---------------------------------------


async def test_fake_server_scripts_chat_completions(fake: FakeOpenAI) -> None:
    import openai
    from openai.types.chat import ChatCompletionMessageParam

    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "is it out yet?"}]
    fake.queue_chat_statuses([500, 429, 200], content="yes")
    fake.queue_chat("too late", delay=10.0)

    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=messages)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="m", messages=messages)
    reply = await client.chat.completions.create(model="m", messages=messages)
    assert reply.choices[0].message.content == "yes"
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(
            model="m",
            messages=messages,
            timeout=0.5,
        )
    stream = await client.chat.completions.create(
        model="m",
        messages=messages,
        stream=True,
    )
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert streamed == fake.default_chat_content

    assert len(fake.chat_requests) == 5
    assert fake.chat_requests[0].body["messages"] == messages
    assert fake.chat_requests[0].headers["authorization"] == "Bearer sk-fake"
    await client.close()
