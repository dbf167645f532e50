"""Sending: each member gets their variant, once, and a stopped send resumes.

The pipeline of a send, top to bottom (``mailer campaigns send`` is :func:`plan_send`, a
confirmation, then :func:`send`):

1. :mod:`~mailer.sending.prepare`: load and validate the issue, plan the audience's variants and
   render each variant once; check every variant's slot markers and build one message template
   (the settings and DKIM keys work). Nothing is written; a broken issue sends nothing.
   :func:`plan_send` (:mod:`~mailer.sending.orchestrate`) adds the checks of the send itself (a time
   in the past, a campaign cancelled, an issue file changed since an earlier stage) and says what
   :func:`send` will do.
2. :mod:`~mailer.sending.snapshot`: ``enqueue`` snapshots the recipients into ``deliveries`` (one
   row per campaign and member, in one transaction, one ``INSERT … SELECT``: its time grows with the
   members, not with variants × members). Suppressed members, and members who left the campaign's
   network, get no row. A campaign is sent in stages: sending it again adds the members of its
   audience who have not had it (narrowed by a segment, capped, or only those who joined since),
   never anyone twice; a campaign with messages still to send is resumed instead.
3. :mod:`~mailer.sending.control`: the campaign is marked ``sending`` (or ``scheduled``, for a
   worker to start on time); ``pause``, ``resume`` and ``cancel`` act on every sender at once.
4. :mod:`~mailer.sending.engine`: claim a batch of pending deliveries under a lease
   (:mod:`~mailer.sending.queue`: Core statements compiled once, no ORM object per recipient),
   re-check the batch against suppressions and network leaves (an unsubscribe made during the send
   stops that member's message), fill each member's slots and tokens into ready wire bytes
   (:mod:`mailer.message.filling`: each variant's template built once, when first needed), hand
   them to the transport, and record every outcome in bulk as it comes back
   (:mod:`~mailer.sending.outcomes`). The engine runs in the sending process, or in any number of
   :mod:`~mailer.sending.worker` processes. When messages are DKIM-signed (RSA-2048 is ~300 µs a
   signature, more than one core keeps up with), helper processes fill and sign them, one per core
   (:mod:`~mailer.sending.fillers`, the ``fill_processes`` setting; unsigned sends get one helper on
   a machine of 3 or more cores), handing the bytes back in shared memory; the sending process keeps
   the database and the relay's connections.
Test sends (:mod:`~mailer.sending.proofs`) go to named addresses, subject marked [TEST], and
record nothing.

What a kill can duplicate. A message counts as sent once its outcome is recorded. Outcomes are
written at least every ``FLUSH_SECONDS`` or ``FLUSH_RESULTS`` results, and the transport holds at
most ``window`` messages in flight (``max(16, 4 × concurrency)``). A process killed with SIGKILL
therefore leaves at most ``window + FLUSH_RESULTS`` messages that reached the relay without being
recorded; only those can be sent twice when the send is resumed (the tests measure this bound, with
and without filling processes). Filling processes change nothing here: they never talk to the relay,
what they filled and the sender had not handed to the transport was never sent, and they exit when
the sender's pipe to them closes, which a kill does too. Nothing is ever lost: a claimed delivery
with no recorded outcome goes back to the queue when its lease expires, or at once when the
process that claimed it is gone. The database going away (a restart, a failover) is not a kill:
the sender keeps what it sent in memory, waits for the database, records it once and claims afresh
(:mod:`~mailer.sending.outage`; the reasoning and its duplicate bound: docs/decisions.md, Workers).

What a relay's hesitation does. A 4xx reply (at MAIL, RCPT, DATA or after the final dot) or a
connection lost before the whole message went out defers the delivery: it is tried again later,
after waits that grow from ``retry_first_minutes`` to ``retry_max_hours``, for
``queue_lifetime_hours`` (3 days), and only then fails ("gave up after 3 days of temporary
failures"). A campaign is ``sent`` once nothing is pending, sending or deferred. A message with no
reply after its final dot (a timeout, a drop, a garbled reply) may have been delivered: it is
recorded ``unknown`` and never resent by itself (RFC 5321, 4.1.1.4); :func:`plan_retry` and
:func:`retry` (``mailer campaigns retry SLUG [--unknown]``) re-queue what failed for temporary
reasons and, asked to, the unknown ones.

Many senders, one campaign. On PostgreSQL any number of processes (``mailer worker``, see
:mod:`mailer.sending.worker`) run an ``Engine`` each on the same campaign: claims use ``FOR UPDATE
SKIP LOCKED``, so no two hold the same delivery, and each renews the leases of what it holds every
``heartbeat_seconds`` while it works. A process that dies stops renewing; once its leases end
(``lease_seconds``), the others claim what it had not recorded. Each running engine reads the
campaign's status every ``STATUS_SECONDS``: ``pause`` or ``cancel`` (:func:`pause_campaign`,
:func:`cancel_campaign`) stops every sender within that time plus the messages already on a
connection. The relay's rate limit is shared through the database
(:mod:`mailer.transport.shared_limits`).
"""

from mailer.audience.mailable import not_left
from mailer.sending.control import (
    CampaignStatus,
    Control,
    campaign_status,
    cancel_campaign,
    check_sendable,
    next_steps,
    parse_send_time,
    pause_campaign,
    resume_campaign,
    schedule_campaign,
    sending_campaigns,
    start_campaign,
    start_due,
)
from mailer.sending.engine import STATUS_SECONDS, Engine
from mailer.sending.orchestrate import (
    DryRun,
    NothingToSend,
    Queued,
    RetryPlan,
    Scheduled,
    SendPlan,
    Sent,
    TestsSent,
    plan_retry,
    plan_send,
    retry,
    run_engine,
    send,
)
from mailer.sending.outcomes import FLUSH_RESULTS, FLUSH_SECONDS, Recorder, Summary
from mailer.sending.prepare import Prepared, audience_of, prepare, template_for
from mailer.sending.proofs import send_tests
from mailer.sending.queue import (
    STATES,
    Backoff,
    Claimed,
    Waiting,
    claim,
    find_campaign,
    release_dead_claims,
    renew_leases,
    requeue,
    retryable_counts,
    status_counts,
    waiting,
    worker_name,
)
from mailer.sending.snapshot import (
    Enqueued,
    StageInfo,
    StagePlan,
    StageRequest,
    campaign_stages,
    enqueue,
    plan_stage,
    stages_of,
)
from mailer.sending.worker import Worker, WorkerHealth, WorkerSummary, alive_workers, worker_health

__all__ = [
    "FLUSH_RESULTS",
    "FLUSH_SECONDS",
    "STATES",
    "STATUS_SECONDS",
    "Backoff",
    "CampaignStatus",
    "Claimed",
    "Control",
    "DryRun",
    "Engine",
    "Enqueued",
    "NothingToSend",
    "Prepared",
    "Queued",
    "Recorder",
    "RetryPlan",
    "Scheduled",
    "SendPlan",
    "Sent",
    "StageInfo",
    "StagePlan",
    "StageRequest",
    "Summary",
    "TestsSent",
    "Waiting",
    "Worker",
    "WorkerHealth",
    "WorkerSummary",
    "alive_workers",
    "audience_of",
    "campaign_stages",
    "campaign_status",
    "cancel_campaign",
    "check_sendable",
    "claim",
    "enqueue",
    "find_campaign",
    "next_steps",
    "not_left",
    "parse_send_time",
    "pause_campaign",
    "plan_retry",
    "plan_send",
    "plan_stage",
    "prepare",
    "release_dead_claims",
    "renew_leases",
    "requeue",
    "resume_campaign",
    "retry",
    "retryable_counts",
    "run_engine",
    "schedule_campaign",
    "send",
    "send_tests",
    "sending_campaigns",
    "stages_of",
    "start_campaign",
    "start_due",
    "status_counts",
    "template_for",
    "waiting",
    "worker_health",
    "worker_name",
]
