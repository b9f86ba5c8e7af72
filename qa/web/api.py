"""The JSON API under /api: ask, search, health and feedback.

Routes are thin: they validate the request (qa.web.api_models), resolve the collection it names
(qa.web.collections), call qa.pipeline and return its JSON. Questions go through the collection's
AskQueue, so those asked at the same time share an encoding pass.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from qa.config import DEFAULT_K
from qa.pipeline import ConversationStore
from qa.web.api_models import AskRequest, FeedbackRequest, SearchRequest
from qa.web.collections import Collections
from qa.web.conversation_routes import history_of, save_answer


def add_api_routes(app: FastAPI, collections: Collections, conversations: ConversationStore,
                   k: int = DEFAULT_K) -> None:
    """`k`: the passages a request that gives none gets (the server's k setting)."""

    @app.post("/api/ask", tags=["api"])
    async def ask(body: AskRequest, request: Request) -> dict:
        """Answer a question from the documents, citing passages (or abstain), and save it in a
        conversation: the one `conversation_id` names (its earlier turns are the history), else a new
        one. The answer says which in `conversation_id`. Without a conversation, a follow-up question
        may send the conversation so far as `history`: the earlier questions with the answers given."""
        collection = collections.for_request(body.collection, request)
        history = [h.turn() for h in body.history]
        if body.conversation_id is not None:
            history = await run_in_threadpool(history_of, conversations, request, body.conversation_id)
        answer = await asyncio.wrap_future(collection.asking.submit(body.question, k=body.k or k, history=history))
        result = answer.to_dict()
        result["conversation_id"] = await save_answer(conversations, request, body.conversation_id, result,
                                                      collection.name)
        return result

    @app.post("/api/search", tags=["api"])
    def search(body: SearchRequest, request: Request) -> dict:
        """The passages ranked for a query, without composing an answer."""
        found = collections.for_request(body.collection, request).qa.search(body.query, k=body.k or k)
        return {"query": body.query, "results": [p.to_dict(rank) for rank, p in enumerate(found, start=1)]}

    @app.get("/api/health", tags=["api"])
    def health() -> dict:
        """Whether the index is loaded, what it holds and which model embeds questions (of the
        default collection: GET /api/collections lists them all)."""
        info = collections.default.qa.info()
        return {"status": "ok", "model": info["model"], "files": info["files"], "documents": info["documents"],
                "chunks": info["chunks"], "built_at": info["built_at"]}

    @app.post("/api/feedback", tags=["api"], status_code=201)
    def add_feedback(body: FeedbackRequest, request: Request) -> dict:
        """Store a thumbs up or down on an answer for the owner to review."""
        collection = collections.for_request(body.collection, request)
        citations = [c.model_dump(exclude_unset=True) for c in body.citations]
        collection.feedback.add(body.rating, body.question, body.answer, citations,
                                history=[h.as_given() for h in body.history], comment=body.comment, via="api",
                                collection=collection.name if len(collections) > 1 else "")
        return {"stored": True}

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    def no_such_endpoint(rest: str):
        raise HTTPException(404, f"no API endpoint /api/{rest} (see /docs)")
