"""Alembic environment: mailer passes its engine in ``config.attributes['engine']``."""

from alembic import context
from sqlalchemy import create_engine

from mailer.models import Base

config = context.config
target_metadata = Base.metadata

engine = config.attributes.get("engine")
if engine is None:  # run from the alembic command line: `alembic -x url=...`
    engine = create_engine(context.get_x_argument(as_dictionary=True)["url"])

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
