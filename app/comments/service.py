"""Comment rules: validation, and who may change a comment: its author (with
`comment:write`) or a moderator (`comment:moderate`)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from app.comments.models import COMMENTS, Comment
from app.core import validation
from app.core.actor import Actor
from app.core.db import Session
from app.core.errors import Forbidden, NotFound
from app.core.tables import delete_row, insert_row, lock_row, update_row
from app.rbac.permissions import Permission
from app.tasks.service import get_task

BODY_MAX = 10_000


def _body(value: str) -> str:
    return validation.text(value, field="body", max_length=BODY_MAX)


async def _changeable(session: Session, comment_id: UUID, actor: Actor) -> Comment:
    comment = await lock_row(session, COMMENTS, comment_id)
    if comment is None:
        raise NotFound("Comment not found", field="id")
    if actor.can(Permission.COMMENT_MODERATE):
        return comment
    actor.require(Permission.COMMENT_WRITE)
    if comment.author_id != actor.user_id:
        raise Forbidden("Only the author or a moderator can change this comment", field="id")
    return comment


async def add_comment(session: Session, task_id: UUID, body: str, *, actor: Actor) -> Comment:
    actor.require(Permission.COMMENT_WRITE)
    body = _body(body)
    await get_task(session, task_id, field="taskId")
    return await insert_row(
        session, COMMENTS, {"task_id": task_id, "body": body, "author_id": actor.user_id}
    )


async def edit_comment(session: Session, comment_id: UUID, body: str, *, actor: Actor) -> Comment:
    body = _body(body)
    await _changeable(session, comment_id, actor)
    updated = await update_row(
        session, COMMENTS, comment_id, {"body": body, "edited_at": datetime.now(UTC)}
    )
    assert updated is not None
    return updated


async def delete_comment(session: Session, comment_id: UUID, *, actor: Actor) -> None:
    await _changeable(session, comment_id, actor)
    await delete_row(session, COMMENTS, comment_id)
