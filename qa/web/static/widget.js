/* qa widget: a floating "ask the documents" chat for any intranet page.

   <script src="http://HOST:7860/widget.js" data-title="Ask the handbook" defer></script>

   Options (data-* on the script tag): title, greeting, position (bottom-right | bottom-left),
   accent (a CSS colour), open ("true" opens on load), api-key (if the server wants one),
   collection (the server's collection to ask; left out, its first),
   mode ("inline" fills its container instead of floating; used by /embed).

   It talks to the JSON API of the server it was loaded from. Each answer is saved in a conversation
   on the server (its session cookie says whose); the page's localStorage keeps the conversation's
   id, so the conversation is shown again after a reload until "New chat" starts another. Everything from a document or a
   user is put in the page with textContent, never innerHTML, and the widget lives in a shadow
   root so the host page's CSS and ours cannot touch each other. */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || script.dataset.qaLoaded) return;
  script.dataset.qaLoaded = "1";

  var data = script.dataset;
  var base = new URL(".", script.src).href.replace(/\/$/, "");
  var opts = {
    title: data.title || "Ask the documents",
    greeting: data.greeting || "Hi! Ask me a question and I will answer from the documents, with sources.",
    position: data.position === "bottom-left" ? "bottom-left" : "bottom-right",
    accent: data.accent && window.CSS && CSS.supports("color", data.accent) ? data.accent : "#2563eb",
    open: data.open === "true" || data.open === "",
    apiKey: data.apiKey || "",
    collection: data.collection || "",
    inline: data.mode === "inline",
  };
  var MAX_QUESTION = 2000;
  var MAX_HISTORY = 20; // earlier turns sent with a question (the API takes 20)
  var MAX_HISTORY_BYTES = 48 * 1024; // and their JSON stays well under the API's 64 KiB body limit

  var CSS_TEXT = [
    ":host { all: initial; }",
    ".root { all: initial; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2328;",
    "  --accent: #2563eb; box-sizing: border-box; }",
    ".root *, .root *::before, .root *::after { box-sizing: border-box; }",
    ".launcher { all: unset; cursor: pointer; width: 56px; height: 56px; border-radius: 50%; background: var(--accent);",
    "  color: #fff; display: flex; align-items: center; justify-content: center; box-shadow: 0 4px 14px rgba(0,0,0,.25); }",
    ".launcher:focus-visible { outline: 3px solid #0969da; outline-offset: 2px; }",
    ".launcher svg { width: 28px; height: 28px; fill: currentColor; }",
    ".panel { display: flex; flex-direction: column; background: #fff; border: 1px solid #d0d7de; border-radius: 12px;",
    "  overflow: hidden; box-shadow: 0 8px 30px rgba(0,0,0,.25); }",
    ".floating .panel { position: absolute; bottom: 68px; width: min(380px, calc(100vw - 32px));",
    "  height: min(560px, calc(100vh - 100px)); }",
    ".floating.right .panel { right: 0; } .floating.left .panel { left: 0; }",
    ".inline .panel { width: 100%; height: 100%; border-radius: 0; border: 0; box-shadow: none; }",
    ".panel[hidden] { display: none; }",
    "header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: var(--accent); color: #fff; }",
    "header .title { flex: 1; font-weight: 600; font-size: 15px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }",
    "header button { all: unset; cursor: pointer; padding: 2px 8px; border-radius: 6px; font-size: 13px; color: #fff; }",
    "header button:hover, header button:focus-visible { background: rgba(255,255,255,.2); }",
    ".log { position: relative; flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 10px; background: #f6f8fa; }",
    ".msg { max-width: 92%; padding: 8px 10px; border-radius: 10px; white-space: pre-wrap; overflow-wrap: anywhere; }",
    ".user { align-self: flex-end; background: var(--accent); color: #fff; }",
    ".bot { align-self: flex-start; background: #fff; border: 1px solid #d0d7de; }",
    ".abstain { background: #fff8e6; border-color: #d4a72c; }",
    ".abstain .label { font-weight: 600; display: block; }",
    ".error { align-self: center; background: #ffebe9; border: 1px solid #ff8182; color: #82071e; }",
    ".typing { color: #57606a; font-style: italic; }",
    ".meta { display: block; margin-top: 4px; font-size: 12px; color: #57606a; }",
    ".cites { margin-top: 8px; display: flex; flex-direction: column; gap: 6px; white-space: normal; }",
    "details { border: 1px solid #d0d7de; border-radius: 8px; background: #f6f8fa; }",
    "summary { cursor: pointer; padding: 5px 8px; font-size: 12.5px; font-weight: 600; color: #1f2328; }",
    ".passage { position: relative; margin: 0; padding: 6px 10px 8px; font-size: 13px; white-space: pre-wrap; color: #24292f;",
    "  max-height: 220px; overflow-y: auto; border-top: 1px solid #d0d7de; }",
    "mark { background: #ffd33d; color: inherit; }",
    ".open { display: inline-block; margin: 0 10px 8px; font-size: 12px; color: #0969da; }",
    ".votes { display: flex; gap: 4px; margin-top: 6px; align-items: center; font-size: 12px; color: #57606a; }",
    ".votes button { all: unset; cursor: pointer; padding: 2px 6px; border-radius: 6px; border: 1px solid #d0d7de;",
    "  display: inline-flex; color: #57606a; }",
    ".votes svg { width: 14px; height: 14px; fill: currentColor; }",
    ".votes button:hover, .votes button:focus-visible { background: #eaeef2; }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #d0d7de; background: #fff; }",
    "textarea { all: unset; flex: 1; min-height: 20px; max-height: 96px; overflow-y: auto; padding: 8px 10px;",
    "  border: 1px solid #d0d7de; border-radius: 8px; font: inherit; white-space: pre-wrap; }",
    "textarea:focus { border-color: var(--accent); }",
    "form button { all: unset; cursor: pointer; padding: 8px 14px; border-radius: 8px; background: var(--accent);",
    "  color: #fff; font-weight: 600; }",
    "form button:disabled { opacity: .5; cursor: default; }",
  ].join("\n");

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  var CHAT_PATH = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z";
  var THUMB_PATH = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 " +
    "7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

  function icon(d, flip) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    if (flip) path.setAttribute("transform", "rotate(180 12 12)");
    svg.appendChild(path);
    return svg;
  }

  function mount() {
    var host = document.createElement("qa-widget");
    var fixed = opts.position === "bottom-left" ? "left: 20px !important;" : "right: 20px !important;";
    host.setAttribute("style", opts.inline
      ? "all: initial !important; display: block !important; width: 100% !important; height: 100% !important;"
      : "all: initial !important; display: block !important; position: fixed !important; bottom: 20px !important; " +
        fixed + " z-index: 2147483000 !important; width: 56px !important; height: 56px !important;");
    var shadow = host.attachShadow({ mode: "open" });
    // A constructed sheet is not blocked by a host page's style-src CSP; <style> is the fallback.
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS_TEXT);
      shadow.adoptedStyleSheets = [sheet];
    } catch (e) {
      shadow.appendChild(el("style", "", CSS_TEXT));
    }

    var root = el("div", "root " + (opts.inline ? "inline" : "floating " + (opts.position === "bottom-left" ? "left" : "right")));
    root.style.setProperty("--accent", opts.accent);
    if (opts.inline) root.style.height = "100%";
    shadow.appendChild(root);

    var panel = el("section", "panel");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", opts.title);
    var header = el("header");
    header.appendChild(el("span", "title", opts.title));
    var reset = el("button", "reset", "New chat");
    reset.type = "button";
    header.appendChild(reset);
    var launcher = null;
    if (!opts.inline) {
      var close = el("button", "close", "\u2715");
      close.type = "button";
      close.setAttribute("aria-label", "Close");
      close.addEventListener("click", function () { setOpen(false); });
      header.appendChild(close);
    }
    panel.appendChild(header);

    var log = el("div", "log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    panel.appendChild(log);

    var form = el("form");
    var input = el("textarea");
    input.rows = 1;
    input.maxLength = MAX_QUESTION;
    input.placeholder = "Ask a question\u2026";
    input.setAttribute("aria-label", "Your question");
    var send = el("button", "", "Ask");
    send.type = "submit";
    form.appendChild(input);
    form.appendChild(send);
    panel.appendChild(form);

    if (!opts.inline) {
      launcher = el("button", "launcher");
      launcher.type = "button";
      launcher.setAttribute("aria-label", "Open chat: " + opts.title);
      launcher.setAttribute("aria-expanded", "false");
      launcher.appendChild(icon(CHAT_PATH));
      launcher.addEventListener("click", function () { setOpen(panel.hidden); });
      root.appendChild(launcher);
    }
    root.appendChild(panel);

    // The conversation so far: {question, answer} for each answered question, the answer text
    // given ("" when it was declined), sent with a vote. The server reads a follow-up with the saved
    // conversation; the history is sent only when that is lost (deleted, or the cookie refused).
    var history = [];
    var STORE_KEY = "qa-widget-conversation:" + base + (opts.collection ? "#" + opts.collection : "");
    var conversationId = remembered();

    function remembered() {
      try { return window.localStorage.getItem(STORE_KEY); } catch (e) { return null; }
    }

    function remember(id) {
      conversationId = id;
      try {
        if (id) window.localStorage.setItem(STORE_KEY, id);
        else window.localStorage.removeItem(STORE_KEY);
      } catch (e) { /* storage off: the conversation lasts as long as the page */ }
    }

    function recentHistory() {
      var recent = history.slice(-MAX_HISTORY);
      while (recent.length && new TextEncoder().encode(JSON.stringify(recent)).length > MAX_HISTORY_BYTES) recent.shift();
      return recent;
    }

    function setOpen(open) {
      panel.hidden = !open;
      if (launcher) launcher.setAttribute("aria-expanded", String(open));
      if (open) input.focus();
    }

    function greet() {
      log.replaceChildren();
      history = [];
      add(el("div", "msg bot greeting", opts.greeting));
    }

    function showTurn(question, answer, asked) {
      add(el("div", "msg user", question));
      history.push({ question: question, answer: answer.abstained ? "" : answer.answer });
      var node = add(answerNode(answer, asked));
      // A long passage opens scrolled to its marked sentence.
      node.querySelectorAll(".passage").forEach(function (block) {
        var mark = block.querySelector("mark");
        if (mark) block.scrollTop = Math.max(0, mark.offsetTop - 24);
      });
    }

    function restore() {
      // The saved conversation this page was showing, back after a reload.
      if (!conversationId) return;
      call("/api/conversations/" + encodeURIComponent(conversationId)).then(function (saved) {
        saved.turns.forEach(function (turn) { showTurn(turn.question, turn, recentHistory()); });
      }, function (err) {
        if (err.status === 404) remember(null);
      });
    }

    function add(node) {
      log.appendChild(node);
      // Show the start of a new message: a long answer with its passages would otherwise scroll
      // its first lines out of view.
      log.scrollTop = Math.max(0, node.offsetTop - 8);
      return node;
    }

    function passageNode(c) {
      // The passage as text nodes, the answer sentences wrapped in <mark> (offsets are document
      // offsets; the passage starts at c.start).
      var block = el("blockquote", "passage");
      var text = c.passage, pos = 0;
      var spans = (c.highlights || []).slice().sort(function (a, b) { return a[0] - b[0]; });
      spans.forEach(function (h) {
        var s = Math.max(h[0] - c.start, pos), e = Math.min(h[1] - c.start, text.length);
        if (s >= e) return;
        block.appendChild(document.createTextNode(text.slice(pos, s)));
        block.appendChild(el("mark", "", text.slice(s, e)));
        pos = e;
      });
      block.appendChild(document.createTextNode(text.slice(pos)));
      return block;
    }

    function citationNode(c, first) {
      var details = el("details", "cite");
      details.open = first;
      var label = "[" + c.n + "] " + c.source;
      if (c.title && c.title !== c.source) label += " \u00b7 " + c.title;
      if (c.location && c.location !== c.title && c.location !== c.source) label += " \u00b7 " + c.location;
      details.appendChild(el("summary", "", label));
      details.appendChild(passageNode(c));
      var link = el("a", "open", "Open the full source \u2197");
      var query = new URLSearchParams({ source: c.source, start: c.start, end: c.end });
      var hl = (c.highlights || []).map(function (h) { return h[0] + "-" + h[1]; }).join(",");
      if (hl) query.set("hl", hl);
      if (opts.collection) query.set("collection", opts.collection);
      link.href = base + "/source?" + query.toString() + "#hit";
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      details.appendChild(link);
      return details;
    }

    function votes(answer, asked) {
      var row = el("div", "votes");
      row.appendChild(el("span", "", "Helpful?"));
      [["up", "Helpful"], ["down", "Not helpful"]].forEach(function (v) {
        var b = el("button", "vote-" + v[0]);
        b.type = "button";
        b.appendChild(icon(THUMB_PATH, v[0] === "down"));
        b.setAttribute("aria-label", v[1]);
        b.title = v[1];
        b.addEventListener("click", function () {
          row.replaceChildren(el("span", "", "Sending\u2026"));
          call("/api/feedback", {
            rating: v[0], question: answer.question, answer: answer.answer, history: asked,
            citations: answer.citations.map(function (c) {
              return { n: c.n, source: c.source, title: c.title, location: c.location, start: c.start, end: c.end, score: c.score };
            }),
          }).then(function () { row.replaceChildren(el("span", "", "Thanks for the feedback.")); },
                  function (err) { row.replaceChildren(el("span", "", err.message)); });
        });
        row.appendChild(b);
      });
      return row;
    }

    function answerNode(answer, asked) {
      var percent = Math.round(answer.confidence * 100) + "%";
      if (answer.abstained) {
        var box = el("div", "msg bot abstain");
        box.appendChild(el("span", "label", "Not found in the documents"));
        box.appendChild(document.createTextNode(answer.answer));
        box.appendChild(el("span", "meta", "confidence " + percent));
        box.appendChild(votes(answer, asked));
        return box;
      }
      var msg = el("div", "msg bot answer");
      msg.appendChild(el("div", "text", answer.answer));
      msg.appendChild(el("span", "meta", "confidence " + percent));
      var cites = el("div", "cites");
      answer.citations.forEach(function (c, i) { cites.appendChild(citationNode(c, i === 0)); });
      msg.appendChild(cites);
      msg.appendChild(votes(answer, asked));
      return msg;
    }

    function call(path, body) {
      // A GET without a body, else a POST of the body as JSON (with the collection asked). The session
      // cookie goes along.
      var headers = {};
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        if (opts.collection) body.collection = opts.collection;
      }
      if (opts.apiKey) headers["X-API-Key"] = opts.apiKey;
      return fetch(base + path, {
        // The cookie goes along to keep the saved conversation, where the server lets it (without
        // sign-in); a page holding a key uses the key, and sends the sign-in cookie only to its own server.
        method: body === undefined ? "GET" : "POST", mode: "cors", credentials: opts.apiKey ? "same-origin" : "include",
        headers: headers, body: body === undefined ? undefined : JSON.stringify(body),
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (payload) {
          if (r.ok) return payload;
          var message = payload.error || "The server answered " + r.status + ".";
          if (r.status === 429) message = "Too many questions: try again in " + (r.headers.get("Retry-After") || "a few") + " s.";
          var error = new Error(message);
          error.status = r.status;
          throw error;
        });
      }, function () {
        throw new Error("Cannot reach the assistant from this page (server down, or this site is not allowed to use it).");
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var question = input.value.trim();
      if (!question || send.disabled) return;
      input.value = "";
      var shownQuestion = add(el("div", "msg user", question));
      var asked = recentHistory();
      var waiting = add(el("div", "msg bot typing", "Looking in the documents\u2026"));
      send.disabled = true;
      function askSaved() {
        if (!conversationId) return call("/api/ask", { question: question, history: asked });
        return call("/api/ask", { question: question, conversation_id: conversationId }).catch(function (err) {
          if (err.status !== 404) throw err;
          remember(null); // the saved conversation is gone: go on in a new one, with this page's history
          return askSaved();
        });
      }
      askSaved().then(function (answer) {
        waiting.remove();
        shownQuestion.remove();
        remember(answer.conversation_id);
        showTurn(question, answer, asked);
      }, function (err) {
        waiting.remove();
        add(el("div", "msg error", err.message));
      }).then(function () {
        send.disabled = false;
        input.focus();
      });
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !opts.inline) {
        setOpen(false);
        if (launcher) launcher.focus();
      }
    });
    reset.addEventListener("click", function () {
      remember(null);
      greet();
    });

    greet();
    restore();
    var parent = opts.inline && script.parentNode && script.parentNode !== document.head ? script.parentNode : document.body;
    parent.appendChild(host);
    panel.hidden = !(opts.inline || opts.open);
    if (launcher) launcher.setAttribute("aria-expanded", String(!panel.hidden));
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
