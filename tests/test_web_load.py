"""Load on the real server: 16 clients on 127.0.0.1 asking back to back for a few seconds while
another client sends its request a byte at a time. No request fails and the slow client holds up
no one. `python bench/load.py --seconds 60` is the long run, with latency and memory numbers."""

from __future__ import annotations

from load_clients import QUESTIONS, SlowClient, run
from web_helpers import ServerThread

from qa.web import WebConfig, create_app

SECONDS = 5


def test_sixteen_clients_are_answered_while_a_slow_client_stalls(seed_index, embedder):
    config = WebConfig(seed_index, rate_limit=None, ui=False, feedback=seed_index.parent / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as server:
        slow = SlowClient(server.url, seconds=SECONDS + 3).start()
        result = run(server.url, 16, SECONDS, QUESTIONS)
        stalled = slow.sent < len(slow.request)  # its request was still arriving when the others finished
        slow.join(timeout=60)
    assert result.errors == 0
    assert stalled and min(result.per_client) >= 5, (slow.sent, result.per_client)
    assert slow.status == 200  # and it is answered once its request is complete
