// API key pages: the allowlist's search (copy buttons are console.js's data-copy-from).
// Delegated from document, so it also works on fragments htmx swaps in. No inline script
// anywhere (the console's CSP).
(function () {
  "use strict";

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
