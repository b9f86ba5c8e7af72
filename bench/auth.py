"""What deciding who is asking costs a request: qa.web.auth's check, in process, per request.

    python bench/auth.py

Times `Authenticator.check` on a request with no keys set, with a right key among 1, 100 and
1,000 keys (each key is compared, in constant time, so the cost grows with their number), with a
session cookie, and unsigned (refused), and prints microseconds per request and the ratio to a
question's 5 ms (the single-client p50 of bench/load.py).
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers

from qa.web.auth import Authenticator, AuthSettings, make_key

QUESTION_MS = 5.0
ROUNDS = 2000


def scope(headers: dict[str, str]) -> dict:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "GET", "path": "/source", "headers": raw, "query_string": b"",
            "client": ("127.0.0.1", 1)}


async def per_request(auth: Authenticator, headers: dict[str, str]) -> tuple[float, bool]:
    async def send(message):
        pass

    passed = False
    started = time.perf_counter()
    for _ in range(ROUNDS):
        s = scope(headers)
        passed = await auth.check(s, Headers(scope=s), send, {}, False)
    return (time.perf_counter() - started) / ROUNDS * 1e6, passed


def keys(n: int):
    return tuple(make_key(f"user{i}", "reader", f"key-{i:04d}-0123456789abcdef") for i in range(n))


def main() -> None:
    cases = [("no keys set", Authenticator(AuthSettings()), {})]
    for n in (1, 100, 1000):
        cases.append((f"right key among {n:,}", Authenticator(AuthSettings(keys(n))),
                      {"X-API-Key": f"key-{n - 1:04d}-0123456789abcdef"}))
    signed = Authenticator(AuthSettings(keys(100)))
    sid = signed.sessions.open(keys(1)[0].principal)
    cases.append(("session cookie (100 keys)", signed, {"Cookie": f"qa_session={sid}"}))
    cases.append(("unsigned, refused (100 keys)", signed, {}))
    print(f"{'request':32} {'us/request':>10} {'of a 5 ms question':>19}  passed")
    for name, auth, headers in cases:
        micros, passed = asyncio.run(per_request(auth, headers))
        print(f"{name:32} {micros:10.1f} {micros / (QUESTION_MS * 1000):18.2%}  {passed}")


if __name__ == "__main__":
    main()
