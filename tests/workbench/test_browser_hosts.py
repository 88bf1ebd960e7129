"""The coding user's origin (VS Code) shares no cookie with the operator's (Langfuse, LiteLLM's UI).

code-server runs as the coding user and serves /proxy/<port>/ from that user's processes, so any page
on VS Code's origin is the coding user's. Cookies are not separated by port (RFC 6265 section 8.5): on
one host, such a page would be sent Langfuse's session cookie and could read LiteLLM's admin `token`.
The cookie here is the one LiteLLM 1.108.7 itself sets at login (its set_session_token_cookie, in .venv);
the jar is Python's http.cookiejar, which matches a cookie without a Domain attribute to its own host
only, as RFC 6265 section 5.4 has browsers do.
"""

import urllib.request
from http.cookiejar import CookieJar

from litellm.proxy.management_endpoints.ui_sso import set_session_token_cookie
from starlette.requests import Request
from starlette.responses import Response

from workbench import connect, contract


def litellm_login_response(url: str) -> tuple[urllib.request.Request, Response]:
    """The response LiteLLM's UI login gives a browser on url, with its real Set-Cookie."""
    host, port = url.removeprefix("http://").split(":")
    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/v2/login", "query_string": b"",
             "headers": [(b"host", f"{host}:{port}".encode())], "server": (host, int(port)), "client": (host, 50000)}
    response = Response()
    set_session_token_cookie(response, Request(scope), "eyJ.admin-session.jwt")
    return urllib.request.Request(f"{url}/v2/login", method="POST"), response


class LoginReply:
    """What http.cookiejar reads of a response (info().get_all): its Set-Cookie headers."""

    def __init__(self, response: Response):
        self.set_cookies = [value.decode() for name, value in response.raw_headers if name == b"set-cookie"]

    def info(self):
        return self

    def get_all(self, name, default):
        return self.set_cookies if name.lower() == "set-cookie" else default


def cookies_sent_to(jar: CookieJar, url: str) -> str | None:
    request = urllib.request.Request(url)
    jar.add_cookie_header(request)
    return request.get_header("Cookie")


def test_litellms_admin_cookie_never_reaches_vs_codes_origin():
    for offset in (0, 10000):
        urls = {forward.service: forward.url for forward in connect.plan(offset)}
        jar = CookieJar()
        request, response = litellm_login_response(urls["LiteLLM"])
        reply = LoginReply(response)
        assert reply.set_cookies == ["token=eyJ.admin-session.jwt; Path=/; SameSite=lax"]
        jar.extract_cookies(reply, request)
        assert cookies_sent_to(jar, f"{urls['LiteLLM']}/ui/") == "token=eyJ.admin-session.jwt"
        # What a page the coding user serves under VS Code's /proxy/ would be sent, and could read.
        assert cookies_sent_to(jar, f"{urls['VS Code']}/proxy/5173/") is None


def test_the_hosts_are_other_sites_and_langfuse_keeps_its_login_url():
    vs_code = contract.SERVICE_HOSTS["VS Code"]
    operator = {contract.SERVICE_HOSTS["Langfuse"], contract.SERVICE_HOSTS["LiteLLM"]}
    # A site is a registrable domain, or the host itself where there is none (an IP address, localhost):
    # neither host is the other or a subdomain of it.
    assert all(vs_code != host and not vs_code.endswith(f".{host}") and not host.endswith(f".{vs_code}")
               for host in operator)
    # Langfuse signs logins for its NEXTAUTH_URL (assets/langfuse), which the tunnel must match exactly.
    assert contract.service_url("Langfuse", 3000) == "http://localhost:3000"
    assert contract.service_url("VS Code", 8080) == "http://127.0.0.1:8080"
