"""Odd answers: switchable ways for the sandbox to answer as a misbehaving server or proxy
would (a redirect, an empty body, a list that never ends, a huge body), so that tests show
what the client does with them. All are off by default.

Each odd answer is one function registered by name. It gets the request, `normal` (an
awaitable that gives the answer the sandbox would have sent: auth, faults and all) and its
options, and returns the answer to send instead. A test switches one on for a path with
`sandbox.faults.odd_answers.append(OddAnswer("redirect", "/system/info", {"status": 301}))`;
`after`, `every` and `times` choose which of the requests it matches it answers (a proxy
that misbehaves now and then, or from some point on).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cw_tui.sandbox import MEDIA_TYPE

Normal = Callable[[], Awaitable[Response]]
Answer = Callable[..., Awaitable[Response]]
ODD_ANSWERS: dict[str, Answer] = {}


@dataclass
class OddAnswer:
    kind: str  # a name in ODD_ANSWERS
    path: str = "*"  # a glob on the API path after /apis/3.0, e.g. "/company/companies"
    options: dict[str, Any] = field(default_factory=dict)
    method: str = "GET"
    times: int | None = None  # answer oddly this many times, then normally again (None: always)
    after: int = 0  # let this many matching requests through first
    every: int = 1  # then answer every Nth matching request oddly (1: each)
    matched: int = field(default=0, init=False)  # matching requests seen so far

    def __post_init__(self) -> None:
        if self.kind not in ODD_ANSWERS:
            raise ValueError(f"unknown odd answer {self.kind!r}; known: {', '.join(sorted(ODD_ANSWERS))}")
        if self.every < 1 or self.after < 0:
            raise ValueError("every is at least 1 and after at least 0")

    def takes(self, method: str, path: str) -> bool:
        """Whether this request is answered oddly (counting it when it matches)."""
        if self.times == 0 or method != self.method or not fnmatch.fnmatchcase(path, self.path):
            return False
        self.matched += 1
        turn = self.matched - self.after
        return turn > 0 and turn % self.every == 0


def odd_answer(name: str) -> Callable[[Answer], Answer]:
    def register(func: Answer) -> Answer:
        ODD_ANSWERS[name] = func
        return func

    return register


async def answer_oddly(odd: OddAnswer, request: Request, normal: Normal) -> Response:
    if odd.times is not None:
        odd.times -= 1
    return await ODD_ANSWERS[odd.kind](request, normal, **odd.options)


def _page(request: Request) -> tuple[int, int]:
    return int(request.query_params.get("page") or 1), int(request.query_params.get("pageSize") or 25)


def _link(request: Request, page: int, rel: str) -> str:
    return f'<{request.url.include_query_params(page=str(page))}>; rel="{rel}"'


# ---------------------------------------------------------------- the odd answers


@odd_answer("redirect")
async def redirect(request: Request, normal: Normal, *, status: int = 302, location: str | None = None,
                   json_body: bool = False, text: str | None = None) -> Response:
    """A redirect (a moved site, a proxy's login page): with the normal JSON body (the request
    was applied, as before a 303 See Other), with an HTML `text`, or with none."""
    target = location or f"https://elsewhere.example.com{request.url.path}"
    if json_body:
        return Response((await normal()).body, status_code=status, headers={"Location": target}, media_type=MEDIA_TYPE)
    if text is not None:
        return Response(text.encode(), status_code=status, headers={"Location": target},
                        media_type="text/html; charset=utf-8")
    return Response(b"", status_code=status, headers={"Location": target})


@odd_answer("empty")
async def empty(request: Request, normal: Normal, *, status: int = 200) -> Response:
    """A success with no body at all."""
    return Response(b"", status_code=status, media_type=MEDIA_TYPE)


@odd_answer("body")
async def body(request: Request, normal: Normal, *, text: str = '{"items": []}', status: int = 200,
               media_type: str = MEDIA_TYPE, applied: bool = False) -> Response:
    """A success with this body instead (an object where a list belongs, an HTML page, ...);
    `applied`: after the request was carried out (a write ConnectWise took, answered oddly)."""
    if applied:
        await normal()
    return Response(text.encode(), status_code=status, media_type=media_type)


@odd_answer("link_always_next")
async def link_always_next(request: Request, normal: Normal) -> Response:
    """The normal page, but the Link header always says there is a next page."""
    response = await normal()
    links = response.headers.get("Link", "")
    if 'rel="next"' not in links:
        page, _ = _page(request)
        response.headers["Link"] = ", ".join(x for x in (links, _link(request, page + 1, "next")) if x)
    return response


@odd_answer("link_without_next")
async def link_without_next(request: Request, normal: Normal) -> Response:
    """The normal page, but the Link header never names a next page."""
    response = await normal()
    links = [x for x in re.split(r",\s*(?=<)", response.headers.get("Link", "")) if x and 'rel="next"' not in x]
    response.headers["Link"] = ", ".join(links)
    return response


@odd_answer("endless")
async def endless(request: Request, normal: Normal) -> Response:
    """Full pages of new records forever, each saying there is a next one."""
    await normal()  # still authenticated and counted as the normal answer would be
    page, size = _page(request)
    size = max(1, min(size, 1000))
    rows = [{"id": 10_000_000 + (page - 1) * size + n, "identifier": f"Endless{n}", "name": f"Endless {page}-{n}"}
            for n in range(size)]
    return Response(json.dumps(rows).encode(), media_type=MEDIA_TYPE,
                    headers={"Link": f"{_link(request, 1, 'first')}, {_link(request, page + 1, 'next')}"})


@odd_answer("oversized")
async def oversized(request: Request, normal: Normal, *, size: int = 64 * 1024 * 1024,
                    declare_length: bool = False) -> Response:
    """A JSON list of `size` bytes, streamed (the sandbox never holds it), with or without a
    Content-Length header."""
    record = b'{"name":"' + b"x" * 1000 + b'"},'
    count = max(1, (size - 2) // len(record))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        for start in range(0, count, 64):
            yield record * min(64, count - start)
        yield b'{"name":""}]'

    length = 1 + count * len(record) + len(b'{"name":""}]')
    headers = {"Content-Length": str(length)} if declare_length else None
    return StreamingResponse(chunks(), media_type=MEDIA_TYPE, headers=headers)


PROXY_PAGES = {
    403: ("403 Forbidden", "Access denied", "The request was blocked by the security rules of this site."),
    502: ("502 Bad Gateway", "Bad gateway", "The web server reported a bad gateway error."),
    503: ("503 Service Temporarily Unavailable", "Service unavailable",
          "The server is temporarily unable to service your request. Please try again later."),
}


@odd_answer("html_error")
async def html_error(request: Request, normal: Normal, *, status: int = 503) -> Response:
    """A proxy's HTML error page in front of the API (a WAF's 403, a load balancer's 503):
    ConnectWise never saw the request."""
    title, heading, text = PROXY_PAGES.get(status, (f"{status} Error", "Error", "An error occurred."))
    page = (f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{heading}</h1><p>{text}</p>"
            "<hr><address>nginx</address></body></html>")
    return Response(page.encode(), status_code=status, media_type="text/html; charset=utf-8")
