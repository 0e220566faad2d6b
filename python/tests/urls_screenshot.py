"""Test-only URLs for the headless-browser test: a login door.

Chromium's command line cannot set a cookie, so the browser opens ``/__login__/?next=...``:
the view logs in the test's superuser with Django's session framework (a real session
cookie, set on the redirect) and sends the browser on to the page. Never mount this outside
tests.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.urls import path

from tests.urls import urlpatterns as base

# Set by the test before the browser starts; the door stays shut without it.
login_token: dict[str, str] = {}


def log_in(request: HttpRequest) -> HttpResponse:
    token = login_token.get("token")
    if not token or request.GET.get("token") != token:
        return HttpResponseForbidden("wrong token")
    user = get_user_model()._default_manager.get(username=login_token["username"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponseRedirect(request.GET.get("next", "/admin/"))


urlpatterns = [*base, path("__login__/", log_in)]
