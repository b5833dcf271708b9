"""docs/config.md's key tables are generated from the pydantic field descriptions: the committed file is current."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("make_config_md", DOCS / "make_config_md.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_config_md_equals_the_generated_text():
    gen = _generator()
    text = (DOCS / "config.md").read_text()
    assert text == gen.generate(text), "docs/config.md is stale: run python docs/make_config_md.py"


def test_every_config_field_is_in_the_tables():
    from sdd_opt.config import RunConfig

    md = _generator().keys_markdown()
    assert "| `train.weight_decay` | `0.0` |" in md and "| `distill.teacher.cache_dir` |" in md
    assert md.count("| `") >= len(RunConfig.model_fields) + 40
    assert RunConfig.model_fields["seed"].description in md
