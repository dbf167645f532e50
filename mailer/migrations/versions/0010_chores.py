"""chore_runs: when each of the workers' chores last ran, and who holds it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chore_runs",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("started_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("finished_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("lease_until", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_chore_runs")),
    )


def downgrade() -> None:
    op.drop_table("chore_runs")
