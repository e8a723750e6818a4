// berth's web interface: the copy buttons. Every page works without this
// script; it only reveals buttons that copy a command or a secret.
"use strict";
(function () {
  function status(button, text) {
    var section = button.closest("section, main");
    var live = section && section.querySelector(".copy-status");
    if (live) { live.textContent = text; }
    var label = button.textContent;
    button.textContent = text === "Copied" ? "Copied" : label;
    window.setTimeout(function () { button.textContent = label; }, 1500);
  }
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done;
  }
  function copy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    var text = target.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { status(button, "Copied"); },
        function () { status(button, fallback(text) ? "Copied" : "Copy failed: select the text"); }
      );
    } else {
      status(button, fallback(text) ? "Copied" : "Copy failed: select the text");
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("button.copy[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", function (event) { copy(event.currentTarget); });
    }
  });
})();
