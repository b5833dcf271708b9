"""Docs are part of the feature: every config key is documented, the README has the two commands."""

from pathlib import Path

from pydantic import BaseModel

from sdd_opt.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def _keys(model, prefix=""):
    for name, field in model.model_fields.items():
        if name == "provenance":
            continue
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _keys(field.annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_every_config_key_is_in_docs_config_md():
    text = (ROOT / "docs/config.md").read_text()
    missing = [k for k in _keys(RunConfig) if f"`{k}`" not in text]
    assert not missing, f"undocumented keys: {missing}"


def test_readme_has_the_two_setup_commands_and_ci_uses_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci/run").read_text()
