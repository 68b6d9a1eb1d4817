"""Regions, base URL checks and the endpoint path table."""

from __future__ import annotations

import dataclasses

import pytest

from gdpr_daemon.ownbackup import REGIONS, Endpoints, region_url
from gdpr_daemon.ownbackup.endpoints import check_base_url, is_loopback_host

PUBLISHED_PATHS = {
    "login": "/api/auth/v1/login",
    "logout": "/api/auth/v1/logout",
    "services": "/api/v1/services",
    "service": "/api/v1/services/{service_id}",
    "backup_now": "/api/v1/services/{service_id}/backup_now",
    "backup_specific_objects_now": "/api/v1/services/{service_id}/backup_specific_objects_now",
    "backups": "/api/v1/services/{service_id}/backups",
    "backup": "/api/v1/services/{service_id}/backups/{backup_id}",
    "backup_objects": "/api/v1/services/{service_id}/backups/{backup_id}/objects",
    "export": "/api/v1/services/{service_id}/backups/{backup_id}/export",
    "export_to_endpoint": "/api/v1/services/{service_id}/backups/{backup_id}/export_to_endpoint",
    "gdpr_rectify": "/api/v1/services/{service_id}/gdpr/rectify",
    "gdpr_forget": "/api/v1/services/{service_id}/gdpr/forget",
    "jobs": "/api/v1/jobs",
    "job": "/api/v1/jobs/{job_id}",
    "events": "/api/v1/events",
    "seeding_templates": "/api/v1/seeding/templates",
    "seed": "/api/v1/seeding/seed/{seed_id}",
    "start_seed": "/api/v1/seeding/templates/{template_id}/seed",
    "anonymize": "/api/v1/seeding/templates/{template_id}/anonymize",
    "anonymize_job": "/api/v1/seeding/anonymize/{anonymize_id}",
    "automations": "/api/v1/services/{service_id}/automations",
}


def test_regions_are_designs() -> None:
    """REGIONS is exactly the vendor's list of regions, in its order."""
    assert REGIONS == (
        "app1", "useast2", "hipaa1", "hipaa4", "usgov2", "ca1", "ca4",
        "emea1", "emea2", "emea4", "uk1", "au1", "au4",
    )  # fmt: skip


@pytest.mark.parametrize("region", REGIONS)
def test_region_url(region: str) -> None:
    """Every region maps to https://{region}.owndata.com."""
    assert region_url(region) == f"https://{region}.owndata.com"


def test_region_url_tolerates_case_and_spaces() -> None:
    """A region typed as ' EMEA1 ' still works."""
    assert region_url(" EMEA1 ") == "https://emea1.owndata.com"


def test_unknown_region_lists_valid_ones() -> None:
    """An unknown region is a ValueError whose sentence lists every valid region."""
    with pytest.raises(ValueError, match="valid regions are app1, useast2") as info:
        region_url("mars1")
    assert all(r in str(info.value) for r in REGIONS)


def test_endpoint_defaults_are_the_design_table() -> None:
    """The default paths are the published API's, one field per call."""
    assert dataclasses.asdict(Endpoints()) == PUBLISHED_PATHS
    assert Endpoints.names() == tuple(PUBLISHED_PATHS)


def test_with_overrides_replaces_only_given_paths() -> None:
    """with_overrides returns a copy with some paths changed and the rest kept."""
    e = Endpoints().with_overrides({"gdpr_forget": "/v2/{service_id}/forget"})
    assert e.gdpr_forget == "/v2/{service_id}/forget"
    assert e.gdpr_rectify == PUBLISHED_PATHS["gdpr_rectify"]
    assert Endpoints().gdpr_forget == PUBLISHED_PATHS["gdpr_forget"]


def test_with_overrides_refuses_unknown_names() -> None:
    """An unknown call name is a ValueError naming it."""
    with pytest.raises(ValueError, match="'gdpr_erase' is not an OwnBackup endpoint name"):
        Endpoints().with_overrides({"gdpr_erase": "/x"})


def test_paths_must_be_absolute() -> None:
    """A path without a leading slash is refused when the table is made."""
    with pytest.raises(ValueError, match="starting with '/'"):
        Endpoints().with_overrides({"events": "api/v1/events"})


def test_endpoints_frozen() -> None:
    """The table is a frozen value object."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Endpoints().events = "/x"  # type: ignore[misc]


def test_path_fills_and_quotes_placeholders() -> None:
    """Placeholders are filled and quoted, so a value cannot add path segments."""
    e = Endpoints()
    assert e.path("backup", service_id=12, backup_id="last") == "/api/v1/services/12/backups/last"
    assert e.path("job", job_id="../x") == "/api/v1/jobs/..%2Fx"


def test_path_with_unfillable_placeholder() -> None:
    """An override using a placeholder the client does not fill is a clear ValueError."""
    e = Endpoints().with_overrides({"events": "/api/{account}/events"})
    with pytest.raises(ValueError, match="placeholder"):
        e.path("events")


@pytest.mark.parametrize(
    "host",
    ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "LOCALHOST", "api.localhost"],
)
def test_loopback_hosts(host: str) -> None:
    """Loopback names and addresses are recognised."""
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["emea1.owndata.com", "10.0.0.1", "128.0.0.1", "", None, "::2"])
def test_non_loopback_hosts(host: str | None) -> None:
    """Everything else is not loopback."""
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    "url",
    ["https://emea1.owndata.com", "https://emea1.owndata.com/", "http://127.0.0.1:8080",
     "http://localhost:1", "http://[::1]:9"],
)  # fmt: skip
def test_accepted_base_urls(url: str) -> None:
    """https anywhere and plain http on loopback are accepted, trailing slash dropped."""
    assert check_base_url(url) == url.rstrip("/")


def test_plain_http_refused_off_loopback() -> None:
    """Plain http to a real host is refused with a sentence saying why."""
    with pytest.raises(ValueError, match="unencrypted"):
        check_base_url("http://emea1.owndata.com")


def test_plain_http_allowed_when_operator_says_so() -> None:
    """allow_insecure_http lets plain http through for a test network."""
    assert (
        check_base_url("http://sim.test:8080", allow_insecure_http=True) == "http://sim.test:8080"
    )


@pytest.mark.parametrize("url", ["emea1.owndata.com", "ftp://x", "https://", "https://x/?a=1", ""])
def test_malformed_base_urls(url: str) -> None:
    """A URL without scheme or host, or with a query, is refused."""
    with pytest.raises(ValueError, match="OwnBackup base URL"):
        check_base_url(url)
