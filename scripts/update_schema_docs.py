"""Regenerate the attribute-schema tables in README.md from lifecircle.export.LAYER_SCHEMAS, and
the configuration tables of docs/configuration.md from lifecircle._schema.

The tables sit between the markers ``<!-- schema:start -->`` and ``<!-- schema:end -->``;
``tests/test_export.py`` fails when README.md or docs/gis-export.md drift from the code.
"""

from __future__ import annotations

from pathlib import Path

from lifecircle import _schema
from lifecircle.export import schema_markdown

START, END = "<!-- schema:start -->", "<!-- schema:end -->"


def main() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    body = schema_markdown().replace("### ", "#### ")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n{body.strip()}\n{END}{tail}", encoding="utf-8")
    print(f"updated {readme}")
    conf = readme.parent / "docs" / "configuration.md"
    text = conf.read_text(encoding="utf-8")
    head = text[: text.index("### scenario.toml")]
    tables = (
        _schema.schema_markdown(_schema.SCENARIO) + "\n" + _schema.schema_markdown(_schema.STANDARD)
    )
    conf.write_text(head + tables, encoding="utf-8")
    print(f"updated {conf}")


if __name__ == "__main__":
    main()
