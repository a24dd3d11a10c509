"""Comment rules: validation, and only the author edits or deletes a comment.

Moderation by others (`comment:moderate`) arrives with roles and permissions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from app.comments.models import COMMENTS, Comment
from app.core import validation
from app.core.db import Session
from app.core.errors import Forbidden, NotFound
from app.core.tables import delete_row, insert_row, lock_row, update_row
from app.tasks.service import get_task

BODY_MAX = 10_000


def _body(value: str) -> str:
    return validation.text(value, field="body", max_length=BODY_MAX)


async def _own(session: Session, comment_id: UUID, actor: UUID) -> Comment:
    comment = await lock_row(session, COMMENTS, comment_id)
    if comment is None:
        raise NotFound("Comment not found", field="id")
    if comment.author_id != actor:
        raise Forbidden("Only the author can change this comment", field="id")
    return comment


async def add_comment(session: Session, task_id: UUID, body: str, *, actor: UUID) -> Comment:
    body = _body(body)
    await get_task(session, task_id, field="taskId")
    return await insert_row(
        session, COMMENTS, {"task_id": task_id, "body": body, "author_id": actor}
    )


async def edit_comment(session: Session, comment_id: UUID, body: str, *, actor: UUID) -> Comment:
    body = _body(body)
    await _own(session, comment_id, actor)
    updated = await update_row(
        session, COMMENTS, comment_id, {"body": body, "edited_at": datetime.now(UTC)}
    )
    assert updated is not None
    return updated


async def delete_comment(session: Session, comment_id: UUID, *, actor: UUID) -> None:
    await _own(session, comment_id, actor)
    await delete_row(session, COMMENTS, comment_id)
