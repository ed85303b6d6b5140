"""JSON Schema export of every event type (the committed copies live in ``shared/schemas/``).

``python -m riskrelay.shared.schemas [DIR]`` rewrites them; a test fails when the committed files
drift from the models, so a contract change is always a visible diff in review.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from riskrelay.shared.events import ENVELOPE_CLASSES

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def event_type_names(cls: type[Any]) -> list[str]:
    """The versioned ``type`` values an envelope class accepts."""
    annotation = cls.model_fields["type"].annotation
    return list(annotation.__args__)


def export_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one file per envelope class (named after its first type)."""
    documents: dict[str, dict[str, Any]] = {}
    for cls in ENVELOPE_CLASSES:
        types = event_type_names(cls)
        schema = cls.model_json_schema(mode="validation")
        schema = {"$schema": SCHEMA_DRAFT, "$id": f"urn:riskrelay:event:{types[0]}", **schema}
        name = types[0].removeprefix("riskrelay.").replace(".created", "")
        documents[f"{name}.json"] = schema
    return documents


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in export_schemas().items():
        path = folder / name
        path.write_text(render(schema))
        written.append(path)
    return written


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("shared/schemas")
    for path in write_schemas(folder):
        print(path)


if __name__ == "__main__":
    main()
