"""members' mailable status with its source and time, first names, and the fields members chose

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_name", sa.String(length=100), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="subscribed", nullable=False)
        )
        batch_op.add_column(sa.Column("status_source", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("status_at", mailer.models.UTCDateTime(), nullable=True))
    # A suppressed member's status says so (the suppression stays the final word).
    op.execute(
        "UPDATE members SET status = CASE s.reason WHEN 'hard-bounce' THEN 'cleaned' ELSE 'unsubscribed' END,"
        " status_source = s.source, status_at = s.created_at"
        " FROM suppressions AS s WHERE s.address_hash = members.address_hash"
    )
    op.create_table(
        "member_choices",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", mailer.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_choices_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "field", name=op.f("pk_member_choices")),
    )


def downgrade() -> None:
    op.drop_table("member_choices")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("status_at")
        batch_op.drop_column("status_source")
        batch_op.drop_column("status")
        batch_op.drop_column("first_name")
