"""organiser_messages: short messages an organiser sends to the people coming to an event (docs/events.md)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organiser_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=150), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("waiting_too", sa.Boolean(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("created_at", mailer.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_organiser_messages_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_organiser_messages_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organiser_messages")),
    )
    with op.batch_alter_table("organiser_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organiser_messages_event_id"), ["event_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("organiser_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organiser_messages_event_id"))
    op.drop_table("organiser_messages")
