"""Reports an organiser can read at a glance: what one campaign did, and how the list grows.

``campaign_report(session, shape, slug)``: for one campaign, overall, by region (the region each
delivery was snapshotted with) and by variant:

- ``deliveries``: members the send snapshotted; ``sent``: accepted by the relay; ``failed``: refused
  at sending time (the relay's 5xx, or given up after retries); ``deferred``: refused for now (4xx)
  or not sent for a lost connection, to be tried again; ``unknown``: sent whole but never answered,
  so the relay may have delivered it (not resent unless asked: ``mailer campaigns retry --unknown``);
- ``hard_bounces``: deliveries refused at sending time with a 5.1.x code, or bounced later with one;
  ``soft_bounces``: bounced later with a soft status (4.x.x, 5.2.2, …) and never hard;
  ``policy``: refused or bounced for policy (5.7.x: spam filter, DMARC), never hard;
  a delivery counts once, under its worst bounce (hard, then policy, then soft);
- ``complaints``: deliveries an ARF feedback report complained of;
- ``unsubscribes``: members whose unsubscribe (web link, one-click, mailto) names this campaign in
  the consent log, counted once each.

``history(session, shape)``: members joined and lost per calendar month (UTC), and the members still
reachable at the end of each month by region. Joined is ``members.created_at``; lost is the date of
each suppression, by its reason. The regions are those of the shallowest level of the region tree at
which members split into more than one group (so a county network sees its districts and a national
one its nations and regions).

``issues(session, shape)``: the headline figures of every campaign, by issue date, for the
"unsubscribes and bounces per issue" chart.
"""

from mailer.reports.campaign import LABELS, CampaignReport, Figures, IssueRow, Row, campaign_report, issues
from mailer.reports.history import History, history
from mailer.reports.page import Page, page_data, render_page

__all__ = [
    "LABELS",
    "CampaignReport",
    "Figures",
    "History",
    "IssueRow",
    "Page",
    "Row",
    "campaign_report",
    "history",
    "issues",
    "page_data",
    "render_page",
]
