"""The schema's Alembic environment and versions.

Kept at the top of the repository and installed as ``gdpr_daemon.migrations`` (see
pyproject.toml), so ``gdpr-daemon migrate`` finds them in a source checkout, an installed
wheel and the container image alike.
"""
