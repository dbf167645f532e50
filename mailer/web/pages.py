"""Page rendering for the web app: Jinja2 templates under ``templates/web/``, workspace first.

A workspace overrides a page by putting a template of the same name in its own
``templates/web/`` (the loader is ``mailer.render.template_loader``, shared with the mail templates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mailer.audience.networks import Network, default_network, privacy_url
from mailer.forms import FormRefused
from mailer.render import template_loader
from mailer.settings import Settings
from mailer.web.csrf import Csrf

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # Links carry tokens: never send them on to another site.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


@dataclass(frozen=True)
class Speaker:
    """Who a page is from, for its footer: a network and the address of its privacy notice."""

    network: Network
    privacy_url: str


class Pages:
    """The page templates and what every page gets (the organisation, the base URL)."""

    def __init__(self, settings: Settings, csrf: Csrf, networks: Sequence[Network] = ()) -> None:
        """``networks``: the workspace's declared networks (``Shape.networks``), for the footer of a
        page that speaks for the whole organisation rather than one network."""
        self.settings = settings
        self.csrf = csrf
        self.networks = tuple(networks)
        self.env = jinja2.Environment(
            loader=template_loader(settings),
            autoescape=jinja2.select_autoescape(["html", "xml", "j2"], default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def text(self, template: str, *, network: Network | None = None, **context: Any) -> str:
        """Render ``web/<template>`` with ``context`` plus the common values: ``network`` (who the
        page or mail speaks as; the workspace's default network when None), ``organisation`` (its
        heading), ``base_url``, ``privacy_url`` (its privacy notice, ``networks.privacy_url``:
        every system mail links to it) and ``identities`` (the footer's: the page's network, or,
        for a page of the whole organisation, each declared network, with its privacy notice)."""
        identities = list(self.networks) if network is None and self.networks else []
        network = network or default_network(self.settings)
        identities = identities or [network]
        values = {
            "network": network,
            "organisation": network.title,
            "base_url": self.settings.base_url.rstrip("/"),
            "privacy_url": privacy_url(network, self.settings),
            "identities": [Speaker(n, privacy_url(n, self.settings)) for n in identities],
            **context,
        }
        return self.env.get_template(f"web/{template}").render(values)

    def page(
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
        csrf_scope: str | None = None,
        headers: dict[str, str] | None = None,
        network: Network | None = None,
    ) -> HTMLResponse:
        """An HTML page, speaking as ``network`` (see ``text``); with ``csrf_scope`` its forms get a
        CSRF value (and the cookie is set)."""
        values = dict(context or {})
        token = None
        if csrf_scope is not None:
            token = self.csrf.issue(request, csrf_scope)
            values["csrf"] = token.value
        body = self.text(name, network=network, **values)
        all_headers = dict(PAGE_HEADERS)
        all_headers.update(headers or {})
        response = HTMLResponse(body, status_code=status, headers=all_headers)
        if token is not None:
            self.csrf.set_cookie(response, token)
        return response

    def message(
        self,
        request: Request,
        title: str,
        text: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        network: Network | None = None,
        **extra: Any,
    ) -> HTMLResponse:
        """A plain page with a heading and a paragraph (errors, "done" pages)."""
        context = {"title": title, "text": text, **extra}
        return self.page(request, "message.html", context, status=status, headers=headers, network=network)

    def refused(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        refused: FormRefused,
        *,
        status: int = 400,
        csrf_scope: str | None = None,
        network: Network | None = None,
    ) -> HTMLResponse:
        """A members' form page (``name``) shown again for a refused post: ``context`` as the page
        shows the form, plus the refusal's message by field as ``errors``; 400 unless ``status``."""
        values = {**context, "errors": dict(refused.errors)}
        return self.page(request, name, values, status=status, csrf_scope=csrf_scope, network=network)

    def form_expired(self, request: Request, *, what: str = "changed") -> HTMLResponse:
        """403 for a form whose CSRF token is missing or old: nothing was ``what`` (changed, sent)."""
        return self.message(
            request,
            "Please try again",
            f"This form had expired, so nothing was {what}. Go back, reload the page and press the "
            "button again.",
            status=403,
        )
