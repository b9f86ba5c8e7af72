"""The web face: one FastAPI app serving the JSON API, the widget and the Gradio chat UI.

    app.py         WebConfig, create_app (everything mounted on one app) and serve (uvicorn)
    guard.py       the middleware every request passes first: hosts, origins, sign-in, rate, body size
    auth.py        who is asking (keys, sessions, a trusted proxy's user) and the role each route needs
    signin.py      /signin and /signout: the browser's session cookie
    api.py         the JSON API routes under /api
    api_models.py  what the JSON API's request bodies accept
    ask_queue.py   API questions asked at the same time, encoded in one pass
    pages.py       /source (a cited document), /widget.js and /embed
    render.py      answers and documents as escaped Markdown and HTML
    uploads.py     the chat UI's uploaded and answered files: swept after a while, never fetched
    collections.py the collections served (name, index, corpus folder, feedback, origins) and the
                   one function resolving a request's collection
    documents.py   a collection's documents listed, added, removed; its background builds
    collection_api.py  the /api/collections routes
    chat_ui.py     the Gradio chat at / (imports gradio: imported only when the UI is mounted)
    batch_tab.py   its Batch tab: a question file in, the answered file out
    documents_tab.py   its Documents tab: upload, remove, the build's progress
    static/        widget.js
"""

from qa.web.app import WebConfig, create_app, serve

__all__ = ["WebConfig", "create_app", "serve"]
