"""The shipped deployment files run the daemon as a gdpr_daemon login and only `migrate` as the
schema owner (issue 10, section 4): otherwise none of roles.sql would apply."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from gdpr_daemon.config import load_settings
from tests.deploy.test_kubernetes import configmap_env, container
from tests.deploy.test_systemd import ENV_EXAMPLE, UNIT, env_file, parse_unit, values


def users(env: dict[str, str]) -> tuple[str, str]:
    settings = load_settings(None, environ=env)
    return str(make_url(settings.require_database()).username), str(make_url(settings.migrate_database()).username)


def password_key(kind: str) -> str:
    (ref,) = [e["valueFrom"]["secretKeyRef"]["key"] for e in container(kind)["env"] if e["name"] == "PGPASSWORD"]
    return ref


def test_kubernetes_runs_the_daemon_and_the_migration_as_two_logins():
    """The Deployment connects as the daemon's login with its password; the migrate Job as the owner with the owner's."""
    daemon, owner = users(configmap_env())
    assert (daemon, owner) == ("gdpr_daemon_app", "gdpr_owner")
    assert container("Deployment")["args"] == ["run"] and container("Job")["args"] == ["migrate"]
    assert (password_key("Deployment"), password_key("Job")) == ("database_password", "migrate_database_password")


def test_systemd_runs_the_daemon_and_the_migration_as_two_logins():
    """The unit migrates (ExecStartPre, the owner's URL) before it runs the daemon as the daemon's login."""
    daemon, owner = users(env_file())
    assert (daemon, owner) == ("gdpr_daemon_app", "gdpr_owner")
    svc = parse_unit(UNIT)["Service"]
    assert [v.rsplit(" ", 1)[1] for v in values(svc, "ExecStartPre")] == ["migrate"]
    assert [v.rsplit(" ", 1)[1] for v in values(svc, "ExecStart")] == ["run"]
    assert "DATABASE_MIGRATE_URL" in ENV_EXAMPLE.read_text(encoding="utf-8")
