"""The workers' chores: due on time, run by one worker at a time however many ask, failures recorded
and retried when next due. On both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from mailer.db import Database
from mailer.sending.chores import Chore, ChoreContext, chore_runs, claim_chore, run_due_chores
from mailer.settings import Settings

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def counting_chore(name: str, every: timedelta, seen: list[str]) -> Chore:
    async def run(context: ChoreContext) -> str:
        seen.append(context.worker)
        await asyncio.sleep(0)
        return f"ran at {context.now:%H:%M}"

    return Chore(name, every, run)


def test_a_chore_runs_once_per_period_whoever_asks(db: Database, settings: Settings) -> None:
    seen: list[str] = []
    chore = counting_chore("count", timedelta(hours=1), seen)

    async def round_of(now: datetime) -> list[list[str]]:
        return list(
            await asyncio.gather(
                *(run_due_chores(db, settings, [chore], worker=f"w{i}", now=now) for i in range(3))
            )
        )

    said = asyncio.run(round_of(T0))
    assert len(seen) == 1 and sum(len(lines) for lines in said) == 1
    assert ["count: ran at 09:00"] in said
    asyncio.run(round_of(T0 + timedelta(minutes=59)))
    assert len(seen) == 1, "not due again within its period"
    asyncio.run(round_of(T0 + timedelta(hours=1)))
    assert len(seen) == 2
    run = chore_runs(db)["count"]
    assert run.outcome == "ran at 10:00" and run.lease_until is None and run.claimed_by in seen


def test_a_claim_is_refused_while_another_worker_holds_the_chore(db: Database) -> None:
    chore = counting_chore("held", timedelta(seconds=0), [])
    assert claim_chore(db, chore, "w1", T0)
    assert not claim_chore(db, chore, "w2", T0 + timedelta(minutes=1)), "w1 holds it under its lease"
    assert claim_chore(db, chore, "w2", T0 + chore.lease), "a lease that ran out frees it"


def test_a_failing_chore_is_recorded_and_the_others_still_run(db: Database, settings: Settings) -> None:
    async def broken(context: ChoreContext) -> str:
        raise RuntimeError("the disk is full")

    seen: list[str] = []
    chores = [Chore("broken", timedelta(hours=1), broken), counting_chore("after", timedelta(hours=1), seen)]
    said = asyncio.run(run_due_chores(db, settings, chores, worker="w1", now=T0))
    assert said == ["broken: failed: the disk is full", "after: ran at 09:00"]
    assert chore_runs(db)["broken"].outcome == "failed: the disk is full"
    assert not claim_chore(db, chores[0], "w1", T0 + timedelta(minutes=5)), "retried when next due"
