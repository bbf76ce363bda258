"""Fakes of external services for tests (real servers on 127.0.0.1, no mocks of our own code)."""

from tests.fakes.openai_server import FakeOpenAI, FakeResponse, RecordedRequest

__all__ = ["FakeOpenAI", "FakeResponse", "RecordedRequest"]
