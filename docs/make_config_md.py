"""Regenerate the key tables of docs/config.md from the pydantic field descriptions in sdd_opt/config.py.

    python docs/make_config_md.py          # rewrite docs/config.md in place
    python docs/make_config_md.py --check  # exit 1 if it is out of date (tests/test_docs_config.py)

Only the part between the ``<!-- keys:begin -->`` and ``<!-- keys:end -->`` markers is generated;
the prose around it is written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

DOC = Path(__file__).with_name("config.md")
BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"
HEADER = "| key | default | meaning |\n|---|---|---|\n"


def _default(value) -> str:
    if value is None or isinstance(value, (bool, list, dict)):
        return json.dumps(value)
    return str(value)


def _section(model: type[BaseModel], prefix: str) -> tuple[list[str], list[tuple[str, type[BaseModel]]]]:
    rows, nested = [], []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((f"{prefix}{name}", ann))
            continue
        desc = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | `{_default(info.get_default(call_default_factory=True))}` | {desc} |")
    return rows, nested


def keys_markdown() -> str:
    """The generated tables: top-level keys, then one table per section (nested sections after theirs)."""
    from sdd_opt.config import RunConfig

    rows, nested = _section(RunConfig, "")
    out = [HEADER + "\n".join(rows) + "\n"]
    while nested:
        path, model = nested.pop(0)
        rows, inner = _section(model, f"{path}.")
        out.append(f"### `{path}`\n\n" + HEADER + "\n".join(rows) + "\n")
        nested = inner + nested
    return "\n".join(out)


def generate(text: str) -> str:
    """``text`` (docs/config.md) with the generated part replaced."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"docs/config.md lacks the {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{keys_markdown()}{END}{tail}"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    current = DOC.read_text()
    fresh = generate(current)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if fresh == current else 1)
    DOC.write_text(fresh)
    print(f"wrote {DOC}")
