"""Consent: the one place that subscribes, confirms, unsubscribes and changes preferences.

A package with a module per concern (``signup``, ``unsubscribe``, ``networks``, ``preferences``,
``imports``, and ``log`` for the consent log itself); everything is imported from here.

Every change to what a person agreed to goes through here, and each appends its line to the consent
log (``consent_log``), so the web pages, inbound mail and the CLI apply the same rules:

- **Sign-up** is double opt-in. ``check_signup`` reads the form (``SignupForm``) into the pending
  sign-up (``SignupData``) or refuses it with a message by field (``mailer.forms.FormRefused``).
  ``already_subscribed`` decides what a sign-up request mails: a current member is told they are
  subscribed; a new or unsubscribed address gets a confirmation link carrying the pending sign-up.
  ``for_network`` makes it a sign-up to its region's network, agreeing to that network's wording.
  ``confirm_signup`` creates or updates the member when the link comes back and logs a
  ``subscribe`` event (source "signup", the wording shown, its version, the network and the form,
  ``form_id``); the other networks' mail is not the new member's until they tick it.
  A name with a web or mail address in it, or over 80 characters, is refused
  (``signup_name_problem``); sign-up mails are counted per mailbox (``mailbox_key``: plus-tags and
  Gmail's dots stripped) so that one mailbox's variants cannot be mail-bombed.
- **Resubscribe after confirm**: a confirmed sign-up is the only thing that lifts a suppression, and
  only when its link was issued after the suppression; the ``resubscribe`` event records what was
  lifted. No other code in mailer removes a suppression.
- **Unsubscribe** (``unsubscribe``, ``unsubscribe_member``) adds a suppression with its reason, its
  source (one-click, link, mailto, bounce, admin) and the campaign that prompted it; the
  suppression is added once and every request is logged (``suppression.suppress_hash``).
- **Preferences** (``check_preferences`` reads the form, ``PreferencesForm``; ``save_preferences``):
  name, home region and interests; a ``preferences`` event says what changed. An unsubscribed
  member's preferences are never saved, and saving never resubscribes anyone.
- **Networks** (docs/decisions.md, Networks): a member may leave one network's mail (``leave_network``: a
  ``network_leaves`` row, added once, and a ``leave-network`` line in the log every time) and rejoin
  it from their preferences page only (``rejoin_network``: ``join-network``; never an import).
  An unsubscribe link or mail leaves the network of the campaign it came from
  (``unsubscribe_scoped``, ``unsubscribe_scope``); in a workspace with a single network, or for a
  campaign of the default network (``Campaign.network`` ""), that is leaving all mail: the
  suppression, which stays the final word.
- **Imports** (``subscribe_imported``) log one ``subscribe`` event per new member; an import never
  lifts a suppression and never rejoins a network.
- **Answers to events** (``log_rsvp``): each RSVP, with its source; never a subscription.
- **Erasure** (``detach_log``) keeps the member's log lines with only the address hash.
"""

from mailer.audience.consent.imports import detach_log, log_imported, subscribe_imported
from mailer.audience.consent.log import IMPORT_SOURCE
from mailer.audience.consent.networks import (
    LEAVE_SOURCES,
    REJOIN_SOURCES,
    Left,
    has_left,
    leave_network,
    network_of_campaign,
    networks_left,
    rejoin_network,
    save_networks,
    unsubscribe_scope,
    unsubscribe_scoped,
)
from mailer.audience.consent.preferences import (
    MemberPreferences,
    Preferences,
    PreferencesForm,
    check_preferences,
    preferences_of,
    preferences_shown,
    save_preferences,
)
from mailer.audience.consent.rsvps import RSVP_ACTION, RSVP_SOURCES, log_rsvp
from mailer.audience.consent.signup import (
    SIGNUP_FORMS,
    SIGNUP_NAME_LIMIT,
    Confirmed,
    SignupData,
    SignupForm,
    StaleConfirmation,
    already_subscribed,
    check_signup,
    confirm_signup,
    for_network,
    form_id,
    mailbox_key,
    signup_name_problem,
    signup_regions,
    signup_shown,
)
from mailer.audience.consent.unsubscribe import Unsubscribed, campaign_label, unsubscribe, unsubscribe_member

__all__ = [
    "IMPORT_SOURCE",
    "LEAVE_SOURCES",
    "REJOIN_SOURCES",
    "RSVP_ACTION",
    "RSVP_SOURCES",
    "SIGNUP_FORMS",
    "SIGNUP_NAME_LIMIT",
    "Confirmed",
    "Left",
    "MemberPreferences",
    "Preferences",
    "PreferencesForm",
    "SignupData",
    "SignupForm",
    "StaleConfirmation",
    "Unsubscribed",
    "already_subscribed",
    "campaign_label",
    "check_preferences",
    "check_signup",
    "confirm_signup",
    "detach_log",
    "for_network",
    "form_id",
    "has_left",
    "leave_network",
    "log_imported",
    "log_rsvp",
    "mailbox_key",
    "network_of_campaign",
    "networks_left",
    "preferences_of",
    "preferences_shown",
    "rejoin_network",
    "save_networks",
    "save_preferences",
    "signup_name_problem",
    "signup_regions",
    "signup_shown",
    "subscribe_imported",
    "unsubscribe",
    "unsubscribe_member",
    "unsubscribe_scope",
    "unsubscribe_scoped",
]
