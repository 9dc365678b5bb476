// emobench report: the gallery's filters, and opening the folded section that holds a linked row.
(function () {
  "use strict";
  var source = document.getElementById("filter-source");
  var target = document.getElementById("filter-target");
  var count = document.getElementById("gallery-count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.gallery-row"));

  function applyFilters() {
    var s = source ? source.value : "*";
    var t = target ? target.value : "*";
    var shown = 0;
    rows.forEach(function (row) {
      var keep = (s === "*" || row.dataset.sourceEmotion === s) && (t === "*" || row.dataset.target === t);
      row.hidden = !keep;
      if (keep) shown += 1;
    });
    if (count) count.textContent = shown + " of " + rows.length + " shown";
  }
  if (source) source.addEventListener("change", applyFilters);
  if (target) target.addEventListener("change", applyFilters);

  // A link to a row inside a closed <details> opens it, so the row can be seen.
  function reveal() {
    if (!location.hash) return;
    var el = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (!el) return;
    for (var p = el; p; p = p.parentElement) {
      if (p.tagName === "DETAILS") p.open = true;
    }
    el.classList.add("linked");
    el.scrollIntoView({ block: "center" });
  }
  window.addEventListener("hashchange", reveal);
  reveal();
  window.EMOBENCH_REPORT = { applyFilters: applyFilters };
})();
