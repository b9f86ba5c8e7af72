"""Clients for the load tests: keep-alive clients asking back to back, one that sends its request
a byte at a time, and the resident memory of a process. bench/load.py uses the slow client, the
questions and rss_mb from here, with its own clients that time each answer."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

QUESTIONS = [
    "What agreement was signed during Rubio's visit?",
    "By how much did joint military training events increase?",
    "Why is the U.S.-Japan alliance being modernized?",
    "What are the hurdles facing the alliance?",
    "What is the long-term trajectory of the alliance?",
    "What is the recipe for banana bread?",
    "Who argues that Japan's strategic calculations are constrained?",
    "What does the critical minerals agreement involve?",
]


class Client:
    """One keep-alive connection asking questions in turn."""

    def __init__(self, url: str, questions: list[str], offset: int = 0):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.questions, self.i = questions, offset
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def ask(self) -> int:
        """The status of the answer to the next question; 0 when the connection failed."""
        question = self.questions[self.i % len(self.questions)]
        self.i += 1
        try:
            self.conn.request("POST", "/api/ask", json.dumps({"question": question}),
                              {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            return 0


class SlowClient:
    """Sends one POST /api/ask a byte at a time, spread over `seconds`, then reads the answer:
    a connection held open by a client that stalls."""

    def __init__(self, url: str, seconds: float, question: str = QUESTIONS[0]):
        parts = urlsplit(url)
        body = json.dumps({"question": question})
        self.request = (
            f"POST /api/ask HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
        ).encode()
        self.address = (parts.hostname, parts.port or 80)
        self.pause = seconds / len(self.request)
        self.sent = 0
        self.sending_seconds = 0.0  # from the first byte to the last
        self.status = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlowClient:
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        try:
            with socket.create_connection(self.address, timeout=120) as sock:
                started = time.perf_counter()
                for i in range(len(self.request)):
                    if i:
                        time.sleep(self.pause)  # the behaviour under test: a client that stalls between bytes
                    sock.sendall(self.request[i : i + 1])
                    self.sent += 1
                self.sending_seconds = time.perf_counter() - started
                response = b""
                while chunk := sock.recv(65536):
                    response += chunk
            self.status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0
        except OSError:
            self.status = 0


@dataclass
class LoadRun:
    errors: int
    per_client: list[int]  # answers each client got


def run(url: str, clients: int, seconds: float, questions: list[str]) -> LoadRun:
    """`clients` clients asking back to back for `seconds`, all starting together."""
    per_client = [0] * clients
    errors = 0
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(n: int) -> None:
        nonlocal errors
        client = Client(url, questions, offset=n)
        start_line.wait()
        while time.perf_counter() < deadline[0]:
            status = client.ask()
            with lock:
                if status == 200:
                    per_client[n] += 1
                else:
                    errors += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    start_line.wait()
    for t in threads:
        t.join(timeout=seconds + 120)
    return LoadRun(errors, per_client)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")
