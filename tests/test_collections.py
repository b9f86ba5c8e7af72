"""Collections and their documents over the JSON API, on a real server: several indexes served
by one process, each answering from its own documents; documents listed, uploaded (then asked
about and cited), removed (then declined), hostile uploads refused without anything written
outside the corpus folder, concurrent uploads all indexed, and a server killed during a
background build leaving the old index whole and answering."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest
from conftest import wait_until, write_corpus
from web_helpers import CORPUS, LEAVE_A, LEAVE_Q, ServerThread, build_test_index, free_port, wait_until_serving

from qa.config import DEFAULT_MODEL, read_settings
from qa.pipeline import QA, build, read_manifest
from qa.web import WebConfig, create_app
from qa.web.documents import safe_name

AQUARIUM = "# Aquarium\n\nThe office aquarium holds eleven seahorses, fed by the Kittiwake club each morning.\n"
AQUARIUM_Q = "How many seahorses does the office aquarium hold?"
ENG = {"deploys.md": "# Deploys\n\nProduction deploys happen every Thursday at 14:00 from the Heron pipeline.\n"}
DEPLOY_Q = "When do production deploys happen?"


def tree(folder) -> set[str]:
    return {os.path.relpath(os.path.join(where, name), folder)
            for where, dirs, files in os.walk(folder) for name in files + dirs}


def settled(api: httpx.Client, name: str = "default", builds: int = 1) -> dict:
    """The collection's status once no build runs or waits and at least `builds` have finished."""
    def done():
        status = api.get(f"/api/collections/{name}/status").json()
        finished = status["last_build"] is not None
        return status if finished and not status["building"] and not status["queued"] else None

    return wait_until(done, 120, f"the build of collection {name}", interval=0.1)


def upload(api: httpx.Client, files: list[tuple[str, bytes]], name: str = "default") -> httpx.Response:
    return api.post(f"/api/collections/{name}/documents", files=[("files", f) for f in files])


@pytest.fixture
def served(tmp_path, embedder):
    """The test corpus as the one collection of a server (no chat UI)."""
    index = build_test_index(tmp_path, embedder)
    with ServerThread(create_app(WebConfig(index, rate_limit=None, ui=False), embedder)) as server, \
            httpx.Client(base_url=server.url, timeout=60) as api:
        yield api, tmp_path


def test_an_index_alone_is_one_collection_named_default_listing_its_documents(served):
    api, root = served
    (listed,) = api.get("/api/collections").json()["collections"]
    assert listed["name"] == "default" and listed["documents"] == len(CORPUS) and listed["chunks"] >= len(CORPUS)
    assert listed["built_at"]
    documents = {d["source"]: d for d in api.get("/api/collections/default/documents").json()["documents"]}
    assert set(documents) == set(CORPUS)
    leave = documents["leave.md"]
    assert leave["title"] == "Annual leave" and leave["size"] == len(CORPUS["leave.md"].encode())
    assert leave["chunks"] == 1 and leave["indexed_at"] == listed["built_at"]
    assert read_manifest(root / "index")["corpus"] == str((root / "corpus").resolve())


def test_an_uploaded_document_is_indexed_cited_and_once_removed_declined(served):
    api, root = served
    assert api.post("/api/ask", json={"question": AQUARIUM_Q}).json()["abstained"]
    sent = upload(api, [("aquarium.md", AQUARIUM.encode())])
    assert sent.status_code == 202, sent.text
    assert sent.json()["accepted"] == [{"source": "aquarium.md", "documents": 1, "size": len(AQUARIUM)}]
    last = settled(api)["last_build"]
    assert last["ok"] and last["embedded"] == 1 and last["reused"] == len(CORPUS) and last["removed"] == 0
    assert (root / "corpus" / "aquarium.md").read_text() == AQUARIUM
    answer = api.post("/api/ask", json={"question": AQUARIUM_Q}).json()
    assert not answer["abstained"] and "eleven seahorses" in answer["answer"]
    assert answer["citations"][0]["source"] == "aquarium.md"
    listed = {d["source"]: d for d in api.get("/api/collections/default/documents").json()["documents"]}
    added = listed["aquarium.md"]
    assert added["chunks"] == 1 and added["indexed_at"] >= listed["leave.md"]["indexed_at"]

    removed = api.delete("/api/collections/default/documents/aquarium.md")
    assert removed.status_code == 202, removed.text
    last = wait_until(lambda: (s := settled(api))["last_build"]["removed"] == 1 and s, 60, "the removal built")
    assert last["last_build"]["ok"] and not (root / "corpus" / "aquarium.md").exists()
    assert api.post("/api/ask", json={"question": AQUARIUM_Q}).json()["abstained"]
    assert "aquarium.md" not in {d["source"] for d in api.get("/api/collections/default/documents").json()["documents"]}


HOSTILE_NAMES = ["../evil.md", "../../evil.md", "/tmp/evil.md", "sub/evil.md", "..\\evil.md", "C:evil.md",
                 ".hidden.md", "..", "evil..md", "evil.exe", "evil", "evil\x1b[31m.md", "evil\u202e.md", ""]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_file_names_other_than_plain_supported_names_are_refused(name):
    with pytest.raises(Exception) as refused:
        safe_name(name)
    assert type(refused.value).__name__ == "DocumentRefused" and "\n" not in str(refused.value)


def test_plain_names_are_kept():
    assert safe_name("Q3 report (final).pdf") == "Q3 report (final).pdf"
    assert safe_name("  notes.MD ") == "notes.MD"


def test_hostile_uploads_are_refused_with_reasons_and_nothing_is_written(served):
    api, root = served
    before = tree(root)
    hostile = [(name, b"# Evil\n\nEvil text that must never be indexed.\n") for name in HOSTILE_NAMES if name]
    hostile += [("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF garbage"),
                ("empty.md", b""), ("binary.txt", b"\x00\x01\x02 binary"),
                ("big.txt", b"word " * (4 * 1024 * 1024 + 1))]  # 20 MB + 5 bytes
    sent = upload(api, hostile)
    assert sent.status_code == 422, sent.text
    body = sent.json()
    assert body["accepted"] == [] and body["error"].startswith("no document was added")
    assert body["error"].endswith(f'(and {len(hostile) - 1} other files: see "refused")')
    reasons = {r["file"]: r["reason"] for r in body["refused"]}
    assert set(reasons) == {name for name, _ in hostile}
    assert "path" in reasons["../evil.md"] and "path" in reasons["/tmp/evil.md"] and "'..'" in reasons["evil..md"]
    assert "hidden" in reasons[".hidden.md"] and "not a supported type" in reasons["evil.exe"]
    assert "PDF" in reasons["broken.pdf"] and "empty" in reasons["empty.md"] and "binary" in reasons["binary.txt"]
    assert "limit per file" in reasons["big.txt"]
    assert all("\n" not in r for r in reasons.values())
    assert tree(root) == before  # nothing written, in the corpus or anywhere beside it
    assert api.get("/api/collections/default/status").json()["last_build"] is None  # no build started

    # Only a source the collection lists can be removed, whatever the path says.
    for source in ("../corpus/leave.md", "%2E%2E/corpus/leave.md", "nothing.md", "/etc/passwd"):
        assert api.delete(f"/api/collections/default/documents/{source}").status_code == 404, source
    assert tree(root) == before
    # Documents go as multipart only, and through the guard's larger limit only on that route.
    assert api.post("/api/collections/default/documents", json={"files": []}).status_code == 415
    assert api.post("/api/ask", content=b"{" + b" " * 70_000 + b"}",
                    headers={"Content-Type": "application/json"}).status_code == 413


def test_concurrent_uploads_to_one_collection_are_all_indexed(served):
    api, root = served
    facts = {f"depot{i}.md": f"# Depot {i}\n\nThe depot number {i} stores exactly {i + 11} spare wheelbarrows.\n"
             for i in range(4)}
    replies = []
    threads = [threading.Thread(target=lambda n=n, t=t: replies.append(upload(api, [(n, t.encode())])))
               for n, t in facts.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in replies) == [202] * 4
    settled(api)
    listed = {d["source"]: d for d in api.get("/api/collections/default/documents").json()["documents"]}
    assert all(listed[name]["chunks"] == 1 for name in facts), listed
    for i in range(4):
        answer = api.post("/api/ask", json={"question": f"How many spare wheelbarrows does depot number {i} store?"})
        assert f"{i + 11} spare wheelbarrows" in answer.json()["answer"]


def test_two_collections_answer_from_their_own_documents(tmp_path, embedder, caplog):
    hr = build_test_index(tmp_path / "hr", embedder)
    write_corpus(tmp_path / "eng" / "corpus", ENG)
    build(tmp_path / "eng" / "corpus", tmp_path / "eng" / "index", DEFAULT_MODEL, embedder=embedder)
    settings = read_settings("serve", {"collections": f"hr={hr},eng={tmp_path / 'eng' / 'index'}",
                                       "collection_origins": "eng=http://eng.example", "rate_limit": "0"}, environ={})
    config = WebConfig.from_settings(settings, ui=False)
    with ServerThread(create_app(config, embedder)) as server, httpx.Client(base_url=server.url, timeout=60) as api:
        names = [c["name"] for c in api.get("/api/collections").json()["collections"]]
        assert names == ["hr", "eng"]
        ask = lambda question, **extra: api.post("/api/ask", json={"question": question, **extra}).json()  # noqa: E731
        assert LEAVE_A in ask(LEAVE_Q)["answer"]  # the first is the default
        assert LEAVE_A in ask(LEAVE_Q, collection="hr")["answer"]
        assert ask(LEAVE_Q, collection="eng")["abstained"]
        deploy = ask(DEPLOY_Q, collection="eng")
        assert "Thursday at 14:00" in deploy["answer"] and deploy["citations"][0]["source"] == "deploys.md"
        assert ask(DEPLOY_Q, collection="hr")["abstained"]
        found = api.post("/api/search", json={"query": "deploys", "collection": "eng"}).json()["results"]
        assert found[0]["source"] == "deploys.md"
        page = api.get("/source", params={"source": "deploys.md", "collection": "eng"})
        assert page.status_code == 200 and "Heron pipeline" in page.text
        assert api.get("/source", params={"source": "deploys.md"}).status_code == 404  # not in hr
        vote = {"rating": "up", "question": DEPLOY_Q, "answer": deploy["answer"], "collection": "eng"}
        assert api.post("/api/feedback", json=vote).status_code == 201
        assert '"collection": "eng"' in (tmp_path / "eng" / "feedback.jsonl").read_text()

        for reply in (api.post("/api/ask", json={"question": LEAVE_Q, "collection": "sales"}),
                      api.post("/api/search", json={"query": "x", "collection": "sales"}),
                      api.post("/api/feedback", json={**vote, "collection": "sales"}),
                      api.get("/api/collections/sales/documents"), api.get("/api/collections/sales/status"),
                      api.delete("/api/collections/sales/documents/leave.md"),
                      upload(api, [("a.md", b"# A\n\ntext\n")], name="sales")):
            assert reply.status_code == 404, reply.text
            assert reply.json()["error"] == "no collection 'sales' here (collections: hr, eng)"

        # An origin allowed for eng alone may ask eng, not hr.
        eng_page = {"Origin": "http://eng.example"}
        allowed = api.post("/api/ask", json={"question": DEPLOY_Q, "collection": "eng"}, headers=eng_page)
        assert allowed.status_code == 200
        assert api.get("/api/collections", headers=eng_page).status_code == 200
        with caplog.at_level(logging.WARNING, logger="qa.web"):
            refused = api.post("/api/ask", json={"question": LEAVE_Q}, headers=eng_page)
            assert api.post("/api/search", json={"query": "x"}, headers=eng_page).status_code == 403
        assert refused.status_code == 403 and "may not use collection 'hr'" in refused.json()["error"]
        said = [r.getMessage() for r in caplog.records if r.name == "qa.web"]
        assert len(said) == 1, said  # once, not per request nor for listing the collections
        assert "'http://eng.example'" in said[0] and "hr=http://eng.example" in said[0]
        assert "QA_COLLECTION_ORIGINS (--collection-origins)" in said[0]
        stranger = api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": "http://x.example"})
        assert stranger.status_code == 403



def test_keys_limited_to_a_collection_and_roles_hold_for_every_collection_route(tmp_path, embedder):
    from qa.web.auth import make_key

    hr = build_test_index(tmp_path / "hr", embedder)
    write_corpus(tmp_path / "eng" / "corpus", ENG)
    build(tmp_path / "eng" / "corpus", tmp_path / "eng" / "index", DEFAULT_MODEL, embedder=embedder)
    reader, admin, eng_only = "r" * 20, "a" * 20, "e" * 20
    limited = make_key("eng", "admin", eng_only, frozenset({"eng"}))
    config = WebConfig(hr, collections=(("hr", hr), ("eng", tmp_path / "eng" / "index")), rate_limit=None, ui=False,
                       api_key=reader, admin_key=admin, named_keys=(limited,))
    with ServerThread(create_app(config, embedder)) as server, httpx.Client(base_url=server.url, timeout=60) as api:
        as_key = lambda key: {"X-API-Key": key}  # noqa: E731
        listed = lambda key: [c["name"] for c in api.get("/api/collections", headers=as_key(key)).json()["collections"]]  # noqa: E731
        assert listed(reader) == ["hr", "eng"] and listed(eng_only) == ["eng"]
        ask = lambda key, **extra: api.post("/api/ask", json={"question": DEPLOY_Q, **extra}, headers=as_key(key))  # noqa: E731
        assert ask(eng_only, collection="eng").status_code == 200
        for refused in (ask(eng_only), ask(eng_only, collection="hr"),
                        api.post("/api/search", json={"query": "x", "collection": "hr"}, headers=as_key(eng_only))):
            assert refused.status_code == 403, refused.text
        source = {"source": "leave.md", "collection": "hr"}
        assert api.get("/source", params=source, headers=as_key(eng_only)).status_code == 404  # as if not there
        assert api.get("/source", params=source, headers=as_key(reader)).status_code == 200
        assert api.get("/api/collections/eng/documents", headers=as_key(reader)).status_code == 403
        assert api.get("/api/collections/eng/documents", headers=as_key(eng_only)).status_code == 200
        assert api.get("/api/collections/hr/documents", headers=as_key(eng_only)).status_code == 403
        assert api.get("/api/collections/hr/documents", headers=as_key(admin)).status_code == 200
        assert api.get("/api/collections", headers={}).status_code == 401


# `qa serve` without the chat UI, which takes most of its start-up time and has no part here.
SERVE_WITHOUT_UI = """import sys
from qa.config import read_settings
from qa.web.app import WebConfig, serve
settings = read_settings("serve", {"collections": sys.argv[1], "port": sys.argv[2]})
serve(WebConfig.from_settings(settings, ui=False), settings.host, settings.port)
"""


def test_collection_flags_are_given_once_per_item_and_the_variables_comma_separated(monkeypatch):
    import click
    from click.testing import CliRunner

    from qa.cli import face_options, settings_of

    @click.command()
    @face_options("serve")
    def probe(**_):
        s = settings_of("serve")
        click.echo(repr((s.collections, s.collection_origins)))

    for name in ("QA_COLLECTIONS", "QA_COLLECTION_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    given = CliRunner().invoke(probe, ["--collection", "hr=index/hr", "--collection", "eng=index/eng",
                                       "--collection-origins", "hr=https://hr.example.com"])
    assert given.output.strip() == repr(((("hr", "index/hr"), ("eng", "index/eng")), (("hr", "https://hr.example.com"),)))
    from_env = CliRunner(env={"QA_COLLECTIONS": "hr=index/hr, eng=index/eng"}).invoke(probe, [])
    assert from_env.output.strip() == repr(((("hr", "index/hr"), ("eng", "index/eng")), ()))
    assert CliRunner().invoke(probe, []).output.strip() == "((), ())"
    twice = CliRunner().invoke(probe, ["--collection", "hr=a", "--collection", "hr=b"])
    assert str(twice.exception) == "--collection / QA_COLLECTIONS names 'hr' twice in 'hr=a,hr=b'"


def test_a_server_killed_during_a_background_build_leaves_the_old_index_answering(tmp_path, embedder):
    index = build_test_index(tmp_path, embedder)
    before = read_manifest(index)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QA_")}, "QA_RATE_LIMIT": "0",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-c", SERVE_WITHOUT_UI, f"hr={index}", str(port)], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_until_serving(url, server, log)
        long_text = "".join(f"Paragraph {i} of the archive describes shelf {i} in the old reading room. " * 3 + "\n\n"
                            for i in range(600))
        with httpx.Client(base_url=url, timeout=60) as api:
            assert upload(api, [("archive.txt", long_text.encode())], name="hr").status_code == 202

            def embedding():
                progress = api.get("/api/collections/hr/status").json()["progress"]
                return progress and progress["stage"] == "embedding" and progress["done"] > 0

            wait_until(embedding, 60, "the build embedding", interval=0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert read_manifest(index)["built_at"] == before["built_at"]  # the old build is still the live one
    assert "archive.txt" not in read_manifest(index)["files"]
    qa = QA(index, embedder=embedder)
    assert LEAVE_A in qa.ask(LEAVE_Q).answer
    # The next build (here `qa index`, as the restarted server's next upload would) picks the file up.
    assert (tmp_path / "corpus" / "archive.txt").exists()
    assert not [p for p in (tmp_path / "corpus").iterdir() if p.name.startswith(".upload-")]
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("conversations.sqlite"))  # saved chats
    assert left == ["corpus", "index", "serve.log"]


def test_the_documents_tab_shows_a_count_only_once_the_build_knows_its_total():
    from qa.web.documents_tab import status_html

    def shown(stage: str, done: int, total: int) -> str:
        return status_html({"progress": {"stage": stage, "done": done, "total": total}, "queued": [],
                            "last_build": None})

    assert shown("starting", 0, 0) == '<p class="qa-doc-progress">Indexing: starting<br><progress></progress></p>'
    assert "Indexing: reading 1 / 2 files" in shown("reading", 1, 2)
    embedding = shown("embedding", 40, 90)
    assert '<progress value="40" max="90">' in embedding and "40 / 90 chunks" in embedding
