"""members' rights: the audit log names the command line's person; which key the address hashes use

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 18:00:00.000000

``address_key_state`` starts empty: the members' hashes are the old unkeyed SHA-256 until the first
session that needs a hash under the workspace's key makes them again (mailer/audience/rehash.py;
docs/data.md, The suppression hash). A migration cannot do it: the key is a file of the workspace,
not of the database.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=200), nullable=False, server_default=""))
    op.create_table(
        "address_key_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("changed_at", mailer.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address_key_state")),
    )


def downgrade() -> None:
    op.drop_table("address_key_state")
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_column("actor")
