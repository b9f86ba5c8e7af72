// The chat UI's copy button copies the text a reader sees, not the message's Markdown source.
// Gradio copies a message's source: document and user text there is HTML- and Markdown-escaped
// (qa.web.render.escape_md) and wrapped in the UI's own tags. During a click on a message's copy
// button this undoes exactly that: the UI's tags and its confidence line and source link go, the
// escapes are read back. It only rewrites text on its way to the clipboard: nothing is rendered.
(function () {
  "use strict";
  var COPY_BUTTON = "#qa-chat button[aria-label='Copy message']";
  var copying = false;

  function plain(source) {
    return String(source)
      .replace(/<span class="qa-confidence">[^<]*<\/span>/g, "")
      .replace(/\[Open the full source[^\]]*\]\([^)\s]*\)/g, "")
      .replace(/<br>/g, "\n")
      .replace(/<\/?(?:div|span|strong|mark)\b[^>]*>/g, "") // the UI's tags: a document's "<" is "&lt;"
      .replace(/\\([\\`*_{}\[\]()#+\-.!|~=$:])/g, "$1")
      .replace(/&(lt|gt|quot|#x27|amp);/g, function (_, name) {
        return { lt: "<", gt: ">", quot: '"', "#x27": "'", amp: "&" }[name];
      })
      .replace(/[ \t]+\n/g, "\n")
      .replace(/\n{3,}/g, "\n\n")
      .trim();
  }

  document.addEventListener("click", function (event) {
    if (event.target instanceof Element && event.target.closest(COPY_BUTTON)) {
      copying = true; // Gradio writes the clipboard within this click
      setTimeout(function () { copying = false; }, 0);
    }
  }, true);

  if (navigator.clipboard && navigator.clipboard.writeText) {
    var write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = function (text) { return write(copying ? plain(text) : text); };
  }
  // Without the Clipboard API (a page served over plain http), Gradio copies from a textarea.
  document.addEventListener("copy", function (event) {
    var from = event.target;
    if (!copying || !(from instanceof HTMLTextAreaElement) || !event.clipboardData) return;
    event.clipboardData.setData("text/plain", plain(from.value));
    event.preventDefault();
  }, true);
})();
