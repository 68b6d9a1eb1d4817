"""The settings model is the one source: the example TOML and the README's reference follow it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from gdpr_daemon import config_reference
from gdpr_daemon.config import SECTIONS, Settings, _flatten_toml, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gdpr-daemon.example.toml"
README = ROOT / "README.md"


def commented_keys(text: str) -> set[str]:
    """Keys written as `# key = value` (settings without a default), with their section prefix."""
    keys: set[str] = set()
    section = ""
    for line in text.splitlines():
        header = re.match(r"^\[(\w+)\]\s*$", line)
        if header:
            section = header.group(1)
            continue
        m = re.match(r"^# ?([a-z_]+) = ", line)
        if m:
            keys.add(f"{section}_{m.group(1)}" if section else m.group(1))
    return keys


def test_example_toml_loads():
    """config/gdpr-daemon.example.toml loads with load_settings as it stands."""
    settings = load_settings(EXAMPLE, environ={})
    settings.require_database()
    assert settings.api_base_url and settings.ownbackup_password is None, "the file rightly holds no password"


def test_example_toml_has_every_key_once():
    """Every setting appears in the example, set or commented out, and nothing else does."""
    text = EXAMPLE.read_text(encoding="utf-8")
    active = set(_flatten_toml(tomllib.loads(text)))
    commented = commented_keys(text)
    assert not active & commented, active & commented
    assert active | commented == set(Settings.model_fields)
    assert set(tomllib.loads(text)) - {"instance_name"} <= set(SECTIONS), "section form throughout"


def test_example_toml_shows_the_true_defaults():
    """A setting the example writes out has the model's default, unless the model has none."""
    active = _flatten_toml(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")))
    differing = {}
    for key, value in active.items():
        info = Settings.model_fields[key]
        default = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        if default is not None and value != default:
            differing[key] = (value, default)
    assert not differing, differing


def test_reference_has_a_row_per_setting_and_hides_secret_defaults():
    """The generated reference has one row per setting, its variable, and never a secret's value."""
    table = config_reference.render()
    rows = table.splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    for key, row in zip(Settings.model_fields, rows, strict=True):
        assert row.startswith(f"| `{key}` | `{env_name(key)}` |")
    secret_rows = [r for r in rows if "`ownbackup_password`" in r or "`ownbackup_api_token`" in r]
    assert all(r.split("|")[3].strip() == "" for r in secret_rows)


def test_reference_command_prints_the_table():
    """`python -m gdpr_daemon.config_reference` prints the table."""
    out = subprocess.run(
        [sys.executable, "-m", "gdpr_daemon.config_reference"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out == config_reference.render()


def test_reference_replace_is_idempotent():
    """--write replaces only the text between the markers and changes nothing a second time."""
    doc = f"# T\n\nbefore\n\n{config_reference.START}\nold table\n{config_reference.END}\n\nafter\n"
    once = config_reference.replace(doc)
    assert once.startswith("# T\n\nbefore\n\n") and once.endswith(f"{config_reference.END}\n\nafter\n")
    assert config_reference.extract(once) == config_reference.render()
    assert config_reference.replace(once) == once


def test_readme_reference_matches_the_model():
    """README.md holds exactly the generated configuration reference between its markers."""
    found = config_reference.extract(README.read_text(encoding="utf-8"))
    assert found is not None, (
        f"README.md lacks the lines {config_reference.START} and {config_reference.END}; "
        "add them and run: python -m gdpr_daemon.config_reference --write README.md"
    )
    assert found == config_reference.render(), (
        "README.md's configuration reference is out of date; run: "
        "python -m gdpr_daemon.config_reference --write README.md"
    )
