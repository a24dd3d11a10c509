"""Comment mutations: read arguments, call one service function, map the result."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import DeletePayload, UserError, attempt
from app.api.permissions import requires
from app.api.relations import result
from app.api.relay import ObjectId, parse_id
from app.comments import service
from app.comments.types import Comment
from app.rbac.permissions import Permission
from app.tasks.types import Task


@strawberry.input(description="A new comment on a task.")
class AddCommentInput:
    task_id: strawberry.ID = strawberry.field(description="The task to comment on.")
    body: str = strawberry.field(description="1-10000 characters.")


@strawberry.input(description="New text for one of your comments.")
class EditCommentInput:
    id: strawberry.ID = strawberry.field(
        description="The comment: yours, or anyone's with `comment:moderate`."
    )
    body: str = strawberry.field(description="1-10000 characters.")


@strawberry.type(description="The result of a comment mutation.")
class CommentPayload:
    comment: Comment | None = result(
        Comment, description="The comment as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type
class CommentMutations:
    @strawberry.mutation(
        description="Comment on a task as the signed-in user.",
        extensions=requires(Permission.COMMENT_WRITE),
    )
    async def add_comment(
        self,
        info: Info,
        input: Annotated[
            AddCommentInput, strawberry.argument(description="The task and the text.")
        ],
    ) -> CommentPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.add_comment(
                s, parse_id(input.task_id, Task, field="taskId"), input.body, actor=actor
            ),
        )
        return CommentPayload(comment=Comment.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Edit the text of a comment you wrote (any comment with `comment:moderate`).",
        extensions=requires(Permission.COMMENT_WRITE),
    )
    async def edit_comment(
        self,
        info: Info,
        input: Annotated[
            EditCommentInput, strawberry.argument(description="The comment and its new text.")
        ],
    ) -> CommentPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.edit_comment(
                s, parse_id(input.id, Comment), input.body, actor=actor
            ),
        )
        return CommentPayload(comment=Comment.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Delete a comment you wrote (any comment with `comment:moderate`).",
        extensions=requires(Permission.COMMENT_WRITE),
    )
    async def delete_comment(self, info: Info, id: ObjectId) -> DeletePayload:
        outcome = await attempt(
            info, lambda s, actor: service.delete_comment(s, parse_id(id, Comment), actor=actor)
        )
        return DeletePayload.of(outcome, id)
