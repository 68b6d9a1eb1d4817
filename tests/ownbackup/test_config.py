"""ClientConfig: a frozen value object that refuses what cannot work, when it is made."""

from __future__ import annotations

import dataclasses
import re

import pytest

from gdpr_daemon import __version__
from gdpr_daemon.ownbackup import (
    VENDOR_CLIENT_ID,
    VENDOR_TOKEN_URL,
    ClientConfig,
    Endpoints,
    OAuthAuth,
    RetryPolicy,
    SessionAuth,
)

AUTH = SessionAuth("dpo@example.com", "pw")


def test_defaults() -> None:
    """The defaults are those of the brief: 30 s, 10 s connect, 100 connections, UA."""
    cfg = ClientConfig(base_url="https://emea1.owndata.com/", auth=AUTH)
    assert cfg.base_url == "https://emea1.owndata.com"
    assert (cfg.timeout, cfg.connect_timeout, cfg.max_connections) == (30.0, 10.0, 100)
    assert cfg.endpoints == Endpoints() and cfg.retry == RetryPolicy()
    assert cfg.user_agent == f"gdpr-daemon/{__version__}"
    assert cfg.allow_insecure_http is False


def test_for_region() -> None:
    """for_region builds the base URL from a region name."""
    assert ClientConfig.for_region("uk1", auth=AUTH).base_url == "https://uk1.owndata.com"


def test_frozen() -> None:
    """The configuration cannot be changed after it is made."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClientConfig(base_url="https://x.owndata.com", auth=AUTH).timeout = 1  # type: ignore[misc]


def test_plain_http_refused() -> None:
    """A plain http:// base URL off loopback is refused, with a sentence saying why."""
    with pytest.raises(ValueError, match="plain http://"):
        ClientConfig(base_url="http://emea1.owndata.com", auth=AUTH)


def test_plain_http_loopback_and_opt_in() -> None:
    """Plain http is fine on loopback, and elsewhere only with allow_insecure_http."""
    assert (
        ClientConfig(base_url="http://127.0.0.1:8080", auth=AUTH).base_url
        == "http://127.0.0.1:8080"
    )
    assert ClientConfig(base_url="http://sim:8080", auth=AUTH, allow_insecure_http=True)


def test_plain_http_token_url_refused() -> None:
    """The OAuth token URL obeys the same rule: no API token over plain http."""
    with pytest.raises(ValueError, match="token URL"):
        ClientConfig(
            base_url="https://emea1.owndata.com",
            auth=OAuthAuth("http://login.example.com/oauth/token", "cid", "tok"),
        )


def test_token_url_on_another_host_follows_the_same_rules() -> None:
    """The vendor's token URL (another host than the API) is accepted; loopback http for a simulator too."""
    vendor = OAuthAuth.vendor("tok")
    assert (vendor.token_url, vendor.client_id) == (VENDOR_TOKEN_URL, VENDOR_CLIENT_ID)
    assert VENDOR_TOKEN_URL.startswith("https://auth.owndata.com/")
    assert ClientConfig(base_url="https://emea1.owndata.com", auth=vendor).auth == vendor
    local = OAuthAuth("http://127.0.0.1:8089/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token", VENDOR_CLIENT_ID, "tok")
    assert ClientConfig(base_url="https://emea1.owndata.com", auth=local)
    with pytest.raises(ValueError, match="token URL"):
        ClientConfig(base_url="http://127.0.0.1:8089", auth=OAuthAuth("https://auth.example.com/t?x=1", "c", "t"))


def test_settings_with_a_plain_http_token_url_exit_as_configuration_error() -> None:
    """ownbackup_token_url over plain http to another host is a configuration error naming the token URL."""
    from gdpr_daemon.config import ConfigError, load_settings
    from gdpr_daemon.runtime import client_config

    settings = load_settings(None, environ={}, ownbackup_region="emea1", ownbackup_auth="oauth",
                             ownbackup_api_token="tok", ownbackup_token_url="http://auth.example.com/token")  # fmt: skip
    with pytest.raises(ConfigError, match=re.escape("token URL 'http://auth.example.com/token' uses plain http")):
        client_config(settings)
    defaults = load_settings(None, environ={}, ownbackup_region="emea1", ownbackup_auth="oauth", ownbackup_api_token="t")
    assert client_config(defaults).auth.token_url == VENDOR_TOKEN_URL  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"connect_timeout": float("nan")},
        {"max_connections": 0},
        {"max_connections": True},
        {"endpoints": {"login": "/x"}},
        {"retry": {"base": 1}},
        {"auth": ("dpo@example.com", "pw")},
    ],
)
def test_nonsense_refused(kwargs: dict[str, object]) -> None:
    """Values that cannot work are refused with a ValueError naming the field."""
    values: dict[str, object] = {"base_url": "https://emea1.owndata.com", "auth": AUTH, **kwargs}
    with pytest.raises(ValueError, match="ClientConfig"):
        ClientConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: SessionAuth("", "pw"),
        lambda: SessionAuth("dpo@example.com", ""),
        lambda: OAuthAuth("", "cid", "tok"),
        lambda: OAuthAuth("https://x/t", "", "tok"),
        lambda: OAuthAuth("https://x/t", "cid", ""),
    ],
)
def test_auth_needs_its_parts(make: object) -> None:
    """Credentials with a missing part are refused when made."""
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
