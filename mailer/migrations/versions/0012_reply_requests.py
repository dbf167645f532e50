"""reply_requests: replies asking to leave, acted on or waiting for a person

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-07 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reply_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("asked", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=True),
        sa.Column("received_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_reply_requests_inbound_id_inbound_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_reply_requests_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_requests")),
    )
    with op.batch_alter_table("reply_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reply_requests_member_id"), ["member_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reply_requests_signature"), ["signature"], unique=False)
        batch_op.create_index(batch_op.f("ix_reply_requests_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reply_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reply_requests_state"))
        batch_op.drop_index(batch_op.f("ix_reply_requests_signature"))
        batch_op.drop_index(batch_op.f("ix_reply_requests_member_id"))
    op.drop_table("reply_requests")
