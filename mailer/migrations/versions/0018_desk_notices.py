"""the desk's notices: which kinds each person turned off, and issues waiting for approval

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-07 18:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_off", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "approval_asks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("asked_by", sa.Integer(), nullable=True),
        sa.Column("asked_at", mailer.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asked_by"], ["users.id"], name=op.f("fk_approval_asks_asked_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_asks")),
    )
    with op.batch_alter_table("approval_asks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approval_asks_slug"), ["slug"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("approval_asks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approval_asks_slug"))
    op.drop_table("approval_asks")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("notify_off")
