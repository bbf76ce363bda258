"""The SSRF guard: shape, normalisation, and addresses refused after DNS resolution."""

from __future__ import annotations

import pytest

from torale.net.ssrf import UnsafeURLError, address_problem, check_url_sync, normalize_url


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTP://Example.COM:80/a?b=1#frag", "http://example.com/a?b=1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("  https://example.com/path  ", "https://example.com/path"),
    ],
)
def test_normalize(raw: str, normal: str) -> None:
    assert normalize_url(raw) == normal


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https://", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com/" + "a" * 2100, "longer than 2048"),
        ("", "empty"),
        ("https://example.com:99999/", "invalid port"),
    ],
)
def test_bad_shapes(raw: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason):
        normalize_url(raw)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "::1", "fc00::1", "100.64.0.1"],
)
def test_private_addresses_refused_unless_allowed(address: str) -> None:
    assert address_problem(address, allow_private=False)
    assert address_problem(address, allow_private=True) is None


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:169.254.169.254"]
)
def test_link_local_and_metadata_always_refused(address: str) -> None:
    assert address_problem(address, allow_private=True)


def test_public_address_allowed() -> None:
    assert address_problem("93.184.216.34", allow_private=False) is None


def test_hostname_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(UnsafeURLError, match="loopback"):
        check_url_sync("http://localhost:8080/", allow_private=False)
    assert check_url_sync("http://localhost:8080/", allow_private=True).addresses


@pytest.mark.parametrize(
    ("url", "allow_private", "refusal"),
    [
        ("http://169.254.169.254/latest/meta-data", True, "link-local or metadata"),
        ("http://[::ffff:169.254.169.254]/", True, "link-local or metadata"),
        ("http://10.0.0.7:8080/", False, "private"),
        ("http://127.0.0.1/", False, "loopback"),
        ("http://127.0.0.1:9/x", True, None),
        ("http://[::1]:9/x", True, None),
    ],
)
async def test_ip_literal_hosts_are_checked_without_dns(
    url: str, allow_private: bool, refusal: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from torale.net.ssrf import check_url

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("an IP literal needs no resolver thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    if refusal is None:
        safe = await check_url(url, allow_private=allow_private)
        assert safe.addresses and safe.host in ("127.0.0.1", "::1")
    else:
        with pytest.raises(UnsafeURLError, match=refusal):
            await check_url(url, allow_private=allow_private)
