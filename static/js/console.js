/* TokenByte console behaviour: theme, copy buttons, tabs, the mobile menu. No inline script
   anywhere (the Content-Security-Policy forbids it), so everything hangs off data attributes. */
(function () {
  "use strict";
  var root = document.documentElement;
  var stored = null;
  try { stored = window.localStorage.getItem("tb-theme"); } catch (e) { /* private mode */ }
  var prefersDark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = stored || (prefersDark ? "dark" : "light");

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a non-localhost address has no clipboard API.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function selectTab(tab) {
    var group = tab.closest("[data-tabs]");
    group.querySelectorAll("[role=tab]").forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      var panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) { panel.hidden = !selected; }
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) { return; }
    var copy = target.closest("[data-copy], [data-copy-from]");
    if (copy) {
      var source = copy.dataset.copyFrom ? document.getElementById(copy.dataset.copyFrom) : null;
      var text = source ? source.textContent.trim() : copy.dataset.copy;
      var label = copy.querySelector("[data-copy-label]") || copy;
      var before = label.textContent;
      copyText(text).then(
        function () { copy.classList.add("copied"); label.textContent = "Copied"; },
        function () { label.textContent = "Select and copy by hand"; }
      );
      window.setTimeout(function () { copy.classList.remove("copied"); label.textContent = before; }, 1400);
      return;
    }
    var tab = target.closest("[data-tabs] [role=tab]");
    if (tab) { selectTab(tab); return; }
    if (target.closest("[data-theme-toggle]")) {
      var next = root.dataset.theme === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      try { window.localStorage.setItem("tb-theme", next); } catch (e) { /* private mode */ }
      return;
    }
    var toggle = target.closest("[data-nav-toggle]");
    if (toggle) {
      var nav = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    }
  });
})();
