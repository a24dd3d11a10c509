"""DataLoaders: the statements an operation runs do not grow with the rows it returns."""

from __future__ import annotations

from app.core.db import Database
from app.core.security import TokenService
from tests.app_fixtures import GraphQL, Org, new_org

# Every relation in the schema, nested, with counts: each level must be one batched query.
NESTED = """
{
  viewer { email assignedTasks(first: 5) { totalCount nodes { title } } }
  projects(first: 100) {
    totalCount
    nodes {
      name
      createdBy { email }
      tasks(first: 10) {
        totalCount
        nodes {
          title
          project { name }
          assignee { email assignedTasks(first: 2) { totalCount } }
          createdBy { displayName }
          comments(first: 5) { totalCount nodes { body author { email } task { title } } }
        }
      }
    }
  }
}
"""


async def seed(database: Database, org: Org, projects: int) -> None:
    """`projects` projects with 3 tasks each, each task with 2 comments (raw SQL: fast)."""
    user = org.members[0].id
    async with database.transaction(org.id) as session:
        await session.execute(
            """
            WITH p AS (
              INSERT INTO projects (tenant_id, name, created_by)
              SELECT app.current_tenant_id(), 'P' || g, $1 FROM generate_series(1, $2) g
              RETURNING id),
            t AS (
              INSERT INTO tasks (tenant_id, project_id, title, position, assignee_id, created_by)
              SELECT app.current_tenant_id(), p.id, 'T' || g, g, $1, $1
              FROM p, generate_series(1, 3) g RETURNING id)
            INSERT INTO comments (tenant_id, task_id, author_id, body)
            SELECT app.current_tenant_id(), t.id, $1, 'C' || g FROM t, generate_series(1, 2) g
            """,
            user,
            projects,
        )


async def count_statements(
    gql: GraphQL, org: Org, statements: list[str]
) -> tuple[int, dict[str, object]]:
    statements.clear()
    data = await gql.data(NESTED, token=org.token)
    return len(statements), data


async def test_statement_count_is_the_same_for_1_and_50_projects(
    gql: GraphQL, database: Database, tokens: TokenService, statements: list[str]
) -> None:
    small = await new_org(database, tokens, members=1)
    large = await new_org(database, tokens, members=1)
    await seed(database, small, 1)
    await seed(database, large, 50)

    small_count, small_data = await count_statements(gql, small, statements)
    large_count, large_data = await count_statements(gql, large, statements)

    assert small_data["projects"]["totalCount"] == 1  # type: ignore[index]
    assert large_data["projects"]["totalCount"] == 50  # type: ignore[index]
    assert len(large_data["projects"]["nodes"][49]["tasks"]["nodes"]) == 3  # type: ignore[index]
    # One per relation and per count, plus one resolving the caller's permissions and two at
    # authentication reading the tenant's status and the session's row (all then cached, the
    # session only with Redis): 15 today, on a first request. Set by the query's shape, not
    # by the data.
    assert small_count == large_count == 15
