"""The tenant setting "MFA required" forces enrolment at the next sign-in."""

from __future__ import annotations

from app.core.db import Database
from app.core.security import MFA_ENROLLMENT_TYPE, TokenService
from tests.app_fixtures import PASSWORD, GraphQL, new_org
from tests.auth.helpers import sign_in
from tests.factories import set_role

SET = """
mutation Set($required: Boolean!) {
  setMfaRequired(required: $required) { tenant { mfaRequired } errors { code } }
}
"""


async def test_admins_require_mfa_and_members_must_enrol_at_sign_in(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, members=2, password=PASSWORD, role="member")
    await set_role(database, org.id, org.members[0].id, "admin")
    admin, member = org.members

    refused = await gql(SET, {"required": True}, token=member.token)
    done = await gql.data(SET, {"required": True}, token=admin.token)
    signed_in = await sign_in(gql, org.slug, member.email, PASSWORD)

    assert refused["data"] is None
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    assert done["setMfaRequired"] == {"tenant": {"mfaRequired": True}, "errors": []}
    assert signed_in["nextStep"] == "MFA_ENROLLMENT_REQUIRED"
    assert signed_in["accessToken"] is None
    assert signed_in["refreshToken"] is None
    claims = tokens.verify_challenge(MFA_ENROLLMENT_TYPE, signed_in["challenge"])
    assert claims.user_id == member.id
    async with database.transaction(org.id, readonly=True) as s:
        actions = await s.fetch("SELECT action FROM audit_log WHERE outcome = 'success'")
    assert "tenant.mfa_required_changed" in [r["action"] for r in actions]
    # Turned off again, sign-in completes with a password alone.
    await gql.data(SET, {"required": False}, token=admin.token)
    assert (await sign_in(gql, org.slug, member.email, PASSWORD))["nextStep"] == "DONE"
