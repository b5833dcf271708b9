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


def _markdown_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _relative_links(text: str):
    """Targets of inline markdown links and images that are not URLs or in-page anchors."""
    import re

    for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#"):
            yield target.split("#", 1)[0]


def test_every_relative_doc_link_resolves_to_a_file_in_the_repository():
    root = ROOT.resolve()
    bad = []
    for md in _markdown_files():
        links = list(_relative_links(md.read_text()))
        for target in links:
            path = (md.parent / target).resolve()
            if not path.is_relative_to(root) or not path.exists():
                bad.append(f"{md.relative_to(root)}: {target}")
    assert not bad, f"links that do not resolve inside the repository: {bad}"
    assert "reference-curves.md" in (ROOT / "docs/concepts.md").read_text()


def test_no_doc_points_outside_the_repository():
    """Paths written as code (not links) count too: ``../shared/...`` lies outside any clone."""
    bad = [str(md.name) for md in _markdown_files() if "../shared/" in md.read_text()]
    assert not bad, bad


def test_the_link_checker_sees_a_broken_link(tmp_path):
    text = "see [x](../shared/reference-curves.md), [y](https://optuna.org), [z](#anchor), ![i](img/a.png)"
    assert list(_relative_links(text)) == ["../shared/reference-curves.md", "img/a.png"]


def test_readme_gives_the_demo_one_timing_and_names_the_other_commands():
    readme = (ROOT / "README.md").read_text()
    assert "8 min 37" not in readme and "Not yet measured" not in readme
    timing = readme[readme.index("**Timing.**"):].split("\n\n")[0]
    assert "5 min 27 s" in timing and "over 10 min" in timing  # both measurements, in one place
    can_do = readme[readme.index("## What you can do"):readme.index("## Layout")]
    for command in ("sdd-opt plot ", "sdd-opt storage serve ", "sdd-opt study curves "):
        assert command in can_do, command
