// The chat UI's [n] markers: a click (or Enter / Space) opens citation n of the same answer, the
// collapsed message titled "[n] source · ...", and scrolls it into view. The marker's hover text,
// set by the server, previews the passage.
(function () {
  "use strict";

  function open(marker) {
    var row = marker.closest(".message-row");
    var n = marker.textContent.trim(); // "[2]"
    if (!row) return;
    var titles = row.querySelectorAll(".thought .title");
    for (var i = 0; i < titles.length; i++) {
      if (titles[i].textContent.trim().indexOf(n + " ") !== 0) continue;
      var thought = titles[i].closest(".thought");
      if (!thought.querySelector("a[href*='source?']")) titles[i].click(); // collapsed: open it
      thought.scrollIntoView({ block: "nearest", behavior: "smooth" });
      return;
    }
  }

  document.addEventListener("click", function (event) {
    var marker = event.target instanceof Element && event.target.closest("#qa-chat .qa-cite");
    if (marker) open(marker);
  });
  document.addEventListener("keydown", function (event) {
    var marker = event.target instanceof Element && event.target.closest("#qa-chat .qa-cite");
    if (marker && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      open(marker);
    }
  });
})();
