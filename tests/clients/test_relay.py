"""The Relay compiler on a set of fragments against schema.graphql, and Relay's runtime
fetching them from the live server.

The fragments (relay/src/) are what a Relay front end writes: `@refetchable` on `Node` types
(refetched through `node(id:)`) and on `Query`, `@connection` paginated both ways
(`first`/`after` and `last`/`before`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from app.core.db import Database
from app.core.security import TokenService
from tests.app_fixtures import GraphQL, new_org
from tests.factories import seed_project, seed_task

from .node import CLIENTS, SCHEMA, node_json, require_node_modules, run, tool

FRAGMENTS = CLIENTS / "relay" / "src"
REFETCHABLE = {
    "Viewer_user": "ViewerRefetchQuery",
    "ProjectTasks_project": "ProjectTasksRefetchQuery",
    "ProjectList_query": "ProjectListPaginationQuery",
}
IDS = "{ viewer { id } projects(first: 1) { edges { node { id } } } }"


def configure_relay(directory: Path) -> Path:
    """A Relay configuration in `directory` compiling the fragments into its __generated__
    (CommonJS, as a bundler loads them); the artifact directory."""
    artifacts = directory / "__generated__"
    artifacts.mkdir()
    # Relay resolves these relative to its configuration file.
    config = {
        "src": os.path.relpath(FRAGMENTS, directory),
        "schema": os.path.relpath(SCHEMA, directory),
        "language": "javascript",
        "eagerEsModules": False,
        "artifactDirectory": "./__generated__",
    }
    (directory / "relay.config.json").write_text(json.dumps(config))
    (directory / "package.json").write_text('{"type": "commonjs"}')
    return artifacts


async def compile_relay(directory: Path) -> tuple[Path, str]:
    """Compile the fragments in `directory`: the artifact directory and the compiler's output."""
    artifacts = configure_relay(directory)
    return artifacts, await run(tool("relay-compiler"), cwd=directory)


async def test_relay_compiler_accepts_refetchable_fragments_and_connections_both_ways(
    tmp_path: Path,
) -> None:
    # given the Relay toolchain
    require_node_modules()

    # when the compiler compiles the fragments against schema.graphql
    artifacts, output = await compile_relay(tmp_path)

    # then it compiles every document without a warning
    assert "Compilation completed" in output, output
    assert "WARN" not in output, output
    assert "ERROR" not in output, output
    compiled = await node_json("relay/artifacts.mjs", {"artifacts": str(artifacts)})
    assert sorted(compiled) == sorted(["AppQuery", *REFETCHABLE, *REFETCHABLE.values()])
    # and refetches Node fragments by their id through node(id:), the Query fragment at the root
    for fragment, path in (("Viewer_user", ["node"]), ("ProjectTasks_project", ["node"])):
        assert compiled[fragment]["refetch"]["fragmentPathInResult"] == path
        assert compiled[fragment]["refetch"]["identifierInfo"]["identifierField"] == "id"
        assert "node(id: $id)" in compiled[REFETCHABLE[fragment]]["text"]
    assert compiled["ProjectList_query"]["refetch"]["fragmentPathInResult"] == []
    # and both connections page in both directions, with the page info each direction needs
    for fragment, field in (("ProjectTasks_project", "tasks"), ("ProjectList_query", "projects")):
        assert compiled[fragment]["connection"][0]["direction"] == "bidirectional"
        assert compiled[fragment]["refetch"]["connection"] == {
            "forward": {"count": "first", "cursor": "after"},
            "backward": {"count": "last", "cursor": "before"},
            "path": [field],
        }
        query = compiled[REFETCHABLE[fragment]]["text"]
        assert f"{field}(first: $first, after: $after, last: $last, before: $before)" in query
        for page_info in ("hasNextPage", "endCursor", "hasPreviousPage", "startCursor"):
            assert page_info in query


async def test_relay_runtime_fetches_refetchable_fragments_from_the_server(
    tmp_path: Path,
    live_server_url: str,
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
) -> None:
    # given a project with three tasks, and its ids as the server gives them
    require_node_modules()
    org = await new_org(database, tokens)
    project = await seed_project(database, org.id, name="Relay")
    for position, title in enumerate(("one", "two", "three"), start=1):
        await seed_task(database, org.id, project, title=title, position=float(position))
    ids = await gql.data(IDS, token=org.token)
    viewer_id, project_id = ids["viewer"]["id"], ids["projects"]["edges"][0]["node"]["id"]
    artifacts, _ = await compile_relay(tmp_path)

    # when Relay's runtime runs the generated refetch queries and reads the fragments
    def step(fragment: str, **variables: Any) -> dict[str, Any]:
        return {"query": REFETCHABLE[fragment], "fragment": fragment, "variables": variables}

    read = await node_json(
        "relay/fetch.mjs",
        {
            "url": f"{live_server_url}/graphql",
            "token": org.token,
            "artifacts": str(artifacts),
            "steps": [
                step("Viewer_user", id=viewer_id),
                step("ProjectTasks_project", id=project_id, first=2),
                step("ProjectTasks_project", id=project_id, last=2),
                step("ProjectList_query", first=10),
            ],
        },
    )

    # then the viewer is refetched by its global id
    viewer, forward, backward, projects = read
    assert viewer["id"] == viewer_id
    assert viewer["email"] == org.members[0].email
    assert "project:read" in viewer["permissions"]
    # and the project's tasks page forward from the start and backward from the end
    assert forward["id"] == project_id
    assert [edge["node"]["title"] for edge in forward["tasks"]["edges"]] == ["one", "two"]
    assert forward["tasks"]["totalCount"] == 3
    assert forward["tasks"]["pageInfo"]["hasNextPage"] is True
    assert [edge["node"]["title"] for edge in backward["tasks"]["edges"]] == ["two", "three"]
    assert backward["tasks"]["pageInfo"]["hasPreviousPage"] is True
    # and the Query fragment lists the tenant's only project, with its id from the store
    assert [edge["node"]["id"] for edge in projects["projects"]["edges"]] == [project_id]


pytestmark = pytest.mark.clients
