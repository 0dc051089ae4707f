// Embeds every chart of a page with the vendored vega-embed: specs come inline (<script type="application/json">
// inside .chart, datasets already filled by the server) or, for the search histogram, from /api/v1/histogram.
(function () {
  "use strict";
  var opts = {actions: false, renderer: "svg"};
  function show(el, spec) {
    // The shared specs declare Vega-Lite v5 (what Kibana / OSD run); the vendored v6 renders them unchanged.
    delete spec["$schema"];
    el.setAttribute("data-state", "loading");
    return vegaEmbed(el, spec, opts).then(function () { el.setAttribute("data-state", "rendered"); })
      .catch(function (err) { el.setAttribute("data-state", "error"); el.textContent = "Chart failed: " + err; });
  }
  document.querySelectorAll(".chart > script[type='application/json']").forEach(function (s) {
    var el = s.parentNode, spec = JSON.parse(s.textContent);
    var box = document.createElement("div");
    box.className = "vega-box";
    el.appendChild(box);
    show(box, spec);
  });
  document.querySelectorAll(".chart[data-hist-url]").forEach(function (el) {
    fetch(el.getAttribute("data-hist-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (h) {
        var step = h.interval_s * 1000;
        var rows = h.buckets.map(function (b) {
          return {t: b.t, t_end: new Date(Date.parse(b.t) + step).toISOString(), level: b.key || "none", count: b.count};
        });
        show(el, {
          width: "container", height: 70,
          autosize: {type: "fit"}, data: {values: rows}, mark: {type: "bar", tooltip: true},
          transform: [{stack: "count", groupby: ["t"], sort: [{field: "level"}], as: ["y0", "y1"]}],
          encoding: {
            x: {field: "t", type: "temporal", title: null}, x2: {field: "t_end"},
            y: {field: "y1", type: "quantitative", title: "records"}, y2: {field: "y0"},
            color: {field: "level", type: "nominal", legend: {orient: "right", title: null},
                    scale: {domain: ["ERROR", "WARN", "INFO", "DEBUG"], range: ["#d62728", "#ff7f0e", "#4c78a8", "#9d9d9d"]}}
          }
        });
      }).catch(function () { el.setAttribute("data-state", "error"); });
  });
})();
