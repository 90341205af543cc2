// API key pages: copy buttons and the allowlist's search. Delegated from document, so they
// also work on fragments htmx swaps in. No inline script anywhere (the console's CSP).
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http hosts other than localhost: the older selection-based copy.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var copied = document.execCommand("copy");
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var label = button.textContent;
    copyText(source.textContent).then(
      function () { button.textContent = "Copied"; },
      function () { button.textContent = "Select and copy by hand"; }
    );
    window.setTimeout(function () { button.textContent = label; }, 2000);
  });

  function updateModels(picker) {
    var filter = picker.querySelector("[data-model-filter]");
    var query = filter ? filter.value.trim().toLowerCase() : "";
    var options = picker.querySelectorAll(".model-option");
    var checked = 0;
    options.forEach(function (option) {
      var box = option.querySelector("input");
      if (box && box.checked) checked += 1;
      var name = option.getAttribute("data-model-name") || "";
      option.hidden = query !== "" && name.indexOf(query) === -1 && !(box && box.checked);
    });
    var count = picker.querySelector("[data-model-count]");
    if (count) {
      count.textContent = checked === 0
        ? "Every model is allowed."
        : checked + " of " + options.length + " models allowed.";
    }
  }

  document.addEventListener("input", function (event) {
    var picker = event.target.closest(".model-picker");
    if (picker) updateModels(picker);
  });
  document.addEventListener("change", function (event) {
    var picker = event.target.closest(".model-picker");
    if (picker) updateModels(picker);
  });

  function init(root) {
    root.querySelectorAll(".model-picker").forEach(updateModels);
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (event) { init(event.target); });
})();
