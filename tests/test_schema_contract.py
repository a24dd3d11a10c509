"""schema.graphql is the contract: generated from the code, fully described, never drifting."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)

from app.cli import main
from app.schema import build_schema, sdl

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == sdl(), (
        "schema.graphql drifted from the code: run `tenantry export-schema`"
    )


def test_export_schema_check_fails_on_drift(tmp_path: Path) -> None:
    stale = tmp_path / "schema.graphql"
    stale.write_text("type Query { old: Int }\n", encoding="utf-8")

    assert main(["export-schema", "--output", str(stale), "--check"]) == 1
    assert main(["export-schema", "--output", str(stale)]) == 0
    assert main(["export-schema", "--output", str(stale), "--check"]) == 0
    assert stale.read_text(encoding="utf-8") == sdl()


def test_every_type_field_and_argument_is_described() -> None:
    schema = build_schema()._schema
    missing = []
    for name, type_ in schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        if not type_.description:
            missing.append(name)
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in type_.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                missing += [
                    f"{name}.{field_name}({arg})"
                    for arg, spec in field.args.items()
                    if not spec.description
                ]
        elif isinstance(type_, GraphQLInputObjectType):
            missing += [f"{name}.{f}" for f, spec in type_.fields.items() if not spec.description]
        elif isinstance(type_, GraphQLEnumType | GraphQLUnionType):
            pass  # the type's own description covers its values
    assert missing == []


def test_the_sdl_does_not_depend_on_settings() -> None:
    from app.core.settings import Limits

    strict = build_schema(Limits(max_depth=3, max_page_size=5), introspection=False)
    assert strict.as_str() + "\n" == sdl()
