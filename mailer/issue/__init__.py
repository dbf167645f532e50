"""Issue files: ``campaigns/<slug>/issue.yaml`` loaded and validated into a typed ``Issue``.

An issue is a newsletter (items, highlights, a calendar) or an alert (one call to action). Event
times are wall-clock times in the workspace's time zone (the ``timezone`` setting, ``Settings.zone``);
the issue's ``date`` is the "today" against which events count as past. Bodies are Markdown,
rendered later with raw HTML off.

``load_issue`` / ``load_campaign`` read a file and validate it as a whole: every problem is reported
at once in one ``ContentError``, each with its file, line and field (``items[3].events[0].end``).
Warnings (pasted markup and ``javascript:`` text, ``http://`` links, events over before the issue
date) come back with the loaded issue, or with the ``ContentError`` when the file has errors;
``audience_warnings`` adds the one that needs the database (an item no member would see).

Rules an editor relies on:

- Every item has a ``highlight`` (its line in the HIGHLIGHTS), unless it says ``highlight: false``:
  then it is a report, a section with no line in the highlights. A missing or empty highlight is an
  error.
- ``regions: []`` and ``interests: []`` (the default) mean everyone in the audience. An event's
  ``regions``/``interests`` default to its item's.
- Text still holding ``TODO`` (as ``mailer campaigns new`` writes it) is an error: fill it in.

The modules: ``schema`` (the models), ``yaml_loader`` (the one YAML engine, YAML 1.2, with the line
and column of every field), ``load`` (validation, problems), ``lint`` (the file's warnings, valid or
not), ``check`` (``mailer campaigns check``, the audience warnings), ``scaffold`` (``mailer campaigns
new``), ``calendar_text`` (dates and times in words, entry UIDs).
"""

from mailer.issue.check import CheckResult, audience_warnings, check_campaign
from mailer.issue.load import (
    ISSUE_FILE,
    LoadedIssue,
    campaign_path,
    campaign_slugs,
    content_warnings,
    load_campaign,
    load_issue,
)
from mailer.issue.scaffold import KINDS, new_campaign
from mailer.issue.schema import (
    SLUG,
    Alert,
    Button,
    Digest,
    Event,
    Image,
    Issue,
    Item,
    Link,
    Newsletter,
    When,
)
from mailer.issue.yaml_loader import field_name, read_yaml

__all__ = [
    "ISSUE_FILE",
    "KINDS",
    "SLUG",
    "Alert",
    "Button",
    "CheckResult",
    "Digest",
    "Event",
    "Image",
    "Issue",
    "Item",
    "Link",
    "LoadedIssue",
    "Newsletter",
    "When",
    "audience_warnings",
    "campaign_path",
    "campaign_slugs",
    "check_campaign",
    "content_warnings",
    "field_name",
    "load_campaign",
    "load_issue",
    "new_campaign",
    "read_yaml",
]
