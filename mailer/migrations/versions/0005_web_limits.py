"""web limits: sign-up and mail counts (rate_hits) and admin log-in attempts, shared by processes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("created_at", mailer.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_hits")),
    )
    with op.batch_alter_table("rate_hits", schema=None) as batch_op:
        batch_op.create_index("ix_rate_hits_scope_key_time", ["scope", "key", "created_at"], unique=False)
        batch_op.create_index("ix_rate_hits_scope_time", ["scope", "created_at"], unique=False)

    op.create_table(
        "login_attempts",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("locked_until", mailer.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_login_attempts")),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
    with op.batch_alter_table("rate_hits", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_hits_scope_time")
        batch_op.drop_index("ix_rate_hits_scope_key_time")
    op.drop_table("rate_hits")
