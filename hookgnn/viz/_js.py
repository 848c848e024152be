"""The script and style of the interactive views (plain JavaScript drawing SVG; no library, no CDN).

``render(root, data)`` draws ``data`` (the JSON that :mod:`hookgnn.viz.html` embeds) into the
element ``root``; errors are written into the view's ``.hg-errors`` element, never swallowed.
"""

CSS = """
.hg-view{font:12px sans-serif;color:#222;display:inline-block}
.hg-view h4{margin:4px 0;font-size:13px}
.hg-view .hg-panels{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
.hg-view .hg-errors{color:#b00;white-space:pre-wrap}
.hg-view .hg-errors:empty{display:none}
.hg-view .hg-tip{min-height:1.3em;font-family:monospace}
.hg-view svg text{font-size:10px}
.hg-view rect.hg-cell:hover{stroke:#000;stroke-width:1.5}
"""

JS = r"""
(function(){
var NS = "http://www.w3.org/2000/svg";
var POS = [178, 24, 43], NEG = [33, 102, 172];
function el(tag, attrs, parent){
  var e = document.createElementNS(NS, tag);
  for (var k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function tip(e, text){ var t = el("title", {}, e); t.textContent = text; return e; }
function mix(c, f){ return "rgb(" + c.map(function(x){ return Math.round(255 + (x - 255) * f); }).join(",") + ")"; }
function fill(v, s){
  if (v === 0) return "rgb(255,255,255)";
  var f = Math.min(1, Math.abs(v) / Math.max(Math.abs(s.vmin), Math.abs(s.vmax), 1e-300));
  return mix(v > 0 ? POS : NEG, f);
}
function stroke(v){ return v === null ? "#7f7f7f" : v > 0 ? "#b2182b" : v < 0 ? "#2166ac" : "#7f7f7f"; }
function width(v, top){ return v === null ? 2.4 : 0.8 + 3.2 * (top > 0 ? Math.abs(v) / top : 0); }

function heatmap(root, d){
  var cw = 22, ch = 20, left = 150, topm = 60;
  var n = d.items.length, m = d.rows.length;
  var svg = el("svg", {width: Math.max(left + n * cw + 20, 520), height: topm + m * ch + 50},
    root.querySelector(".hg-panels"));
  var tipline = root.querySelector(".hg-tip");
  d.items.forEach(function(lab, j){
    var at = "translate(" + (left + j * cw + cw / 2 + 3) + "," + (topm - 4) + ") rotate(-90)";
    var t = el("text", {x: 0, y: 0, transform: at}, svg);
    t.textContent = lab;
  });
  d.rows.forEach(function(row, i){
    var t = el("text", {x: left - 4, y: topm + i * ch + ch / 2 + 4, "text-anchor": "end"}, svg);
    t.textContent = i + ": " + row;
    d.values[i].forEach(function(v, j){
      var text = d.row_axis + " " + i + " (" + row + "), " + d.item_axis + " " + d.items[j] + ": " + v;
      var r = el("rect", {x: left + j * cw, y: topm + i * ch, width: cw - 1, height: ch - 1, fill: fill(v, d.scale),
        "class": "hg-cell", "data-round": i, "data-hook": row, "data-item": d.items[j], "data-value": String(v)}, svg);
      tip(r, text);
      r.addEventListener("mouseover", function(){ tipline.textContent = text; });
    });
  });
  var t = el("text", {x: left, y: topm + m * ch + 30}, svg);
  var g = el("linearGradient", {id: root.id + "-grad"}, el("defs", {}, svg));
  [d.scale.vmin, (d.scale.vmin + d.scale.vmax) / 2, d.scale.vmax].forEach(function(v, k){
    el("stop", {offset: k / 2, "stop-color": fill(v, d.scale)}, g); });
  el("rect", {x: left, y: topm + m * ch + 10, width: 120, height: 10, fill: "url(#" + root.id + "-grad)", stroke: "#999"}, svg);
  t.setAttribute("x", left + 128);
  t.setAttribute("y", topm + m * ch + 19);
  t.textContent = d.scale.vmin.toPrecision(3) + " to " + d.scale.vmax.toPrecision(3) + " (white: no effect)";
}

function circuit(root, d){
  var panels = root.querySelector(".hg-panels");
  var cw = 70, ch = 24, left = 60, topm = 30, R = d.rounds;
  var top = 0;
  d.messages.forEach(function(m){ if (m.score !== null) top = Math.max(top, Math.abs(m.score)); });
  var un = el("svg", {width: left + R * cw + 40, height: topm + d.nodes * ch + 20, "class": "hg-unrolled"}, panels);
  var defs = el("defs", {}, un);
  ["#b2182b", "#2166ac", "#7f7f7f"].forEach(function(c){
    var mk = el("marker", {id: root.id + "-m" + c.slice(1), viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse"}, defs);
    el("path", {d: "M0,0 L10,5 L0,10 z", fill: c}, mk);
  });
  function X(t){ return left + t * cw; }
  function Y(n){ return topm + n * ch; }
  var band = el("rect", {x: 0, y: topm - 14, width: cw, height: d.nodes * ch + 4, fill: "#fff3c4", "class": "hg-band"}, un);
  for (var t = 0; t <= R; t++){
    var lab = el("text", {x: X(t), y: topm - 16, "text-anchor": "middle"}, un); lab.textContent = "h" + t;
    for (var n = 0; n < d.nodes; n++) el("circle", {cx: X(t), cy: Y(n), r: 2.5, fill: "#bbb"}, un);
  }
  for (var n = 0; n < d.nodes; n++){
    var l = el("text", {x: left - 14, y: Y(n) + 4, "text-anchor": "end"}, un); l.textContent = "node " + n;
  }
  d.sources.forEach(function(s){
    tip(el("rect", {x: X(0) - 6, y: Y(s) - 6, width: 12, height: 12, fill: "#2ca02c", "class": "hg-source"}, un),
        "source " + s);
  });
  d.query.forEach(function(q){
    tip(el("circle", {cx: X(R), cy: Y(q), r: 7, fill: "#f0a500", stroke: "#000", "class": "hg-query"}, un),
        "query " + q);
  });
  function bend(k){ return k === 0 ? 0 : (k % 2 ? 1 : -1) * Math.ceil(k / 2); }  // 0, 1, -1, 2, -2 ...
  var arrows = d.messages.map(function(m){
    var c = stroke(m.score);
    var x1 = X(m.round) + 4, y1 = Y(m.u), x2 = X(m.round + 1) - 4, y2 = Y(m.v);
    var dx = x2 - x1, dy = y2 - y1, L = Math.sqrt(dx * dx + dy * dy) || 1, off = 9 * bend(m.rank);
    var p = el("path", {d: "M" + x1 + "," + y1 + " Q" + ((x1 + x2) / 2 - off * dy / L) + ","
      + ((y1 + y2) / 2 + off * dx / L) + " " + x2 + "," + y2, fill: "none", stroke: c,
      "stroke-width": width(m.score, top), "marker-end": "url(#" + root.id + "-m" + c.slice(1) + ")",
      "class": "hg-msg", "data-round": m.round, "data-msg": m.u + "->" + m.v, "data-edge": m.edge,
      "data-value": m.score === null ? "" : String(m.score)}, un);
    return tip(p, "round " + m.round + ", " + m.u + "->" + m.v + (m.score === null ? "" : ": " + m.score));
  });
  var gv = el("svg", {width: 320, height: 320, "class": "hg-graph"}, panels);
  var P = d.pos.map(function(p){ return [160 + 130 * p[0], 160 + 130 * p[1]]; });
  d.edges.forEach(function(e){
    if (e[0] !== e[1]) el("line", {x1: P[e[0]][0], y1: P[e[0]][1], x2: P[e[1]][0], y2: P[e[1]][1], stroke: "#ddd"}, gv);
  });
  var layer = el("g", {"class": "hg-round-layer"}, gv);
  for (var n = 0; n < d.nodes; n++){
    var col = d.query.indexOf(n) >= 0 ? "#f0a500" : d.sources.indexOf(n) >= 0 ? "#2ca02c" : "#eee";
    el("circle", {cx: P[n][0], cy: P[n][1], r: 9, fill: col, stroke: "#666"}, gv);
    var tx = el("text", {x: P[n][0], y: P[n][1] + 3.5, "text-anchor": "middle"}, gv); tx.textContent = n;
  }
  var label = root.querySelector(".hg-round-label"), slider = root.querySelector("input.hg-slider");
  function show(r){
    r = Math.max(0, Math.min(R - 1, r | 0));
    root.setAttribute("data-round", r);
    slider.value = r;
    band.setAttribute("x", X(r));
    arrows.forEach(function(a){ a.setAttribute("opacity", +a.getAttribute("data-round") === r ? 1 : 0.15); });
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    var k = 0;
    d.messages.forEach(function(m){
      if (m.round !== r) return;
      k++;
      var c = stroke(m.score), a = P[m.u], b = P[m.v], path;
      if (m.u === m.v) {  // a loop above the node; parallel loops nested, larger by rank
        var lh = 40 + 14 * m.rank, lw = 22 + 8 * m.rank;
        path = "M" + (a[0] - 5) + "," + (a[1] - 8) + " C" + (a[0] - lw) + "," + (a[1] - lh) + " "
          + (a[0] + lw) + "," + (a[1] - lh) + " " + (a[0] + 5) + "," + (a[1] - 8);
      } else {  // bends to its right: v->u on the other side of u->v; parallel ones further out by rank
        var dx = b[0] - a[0], dy = b[1] - a[1], L = Math.sqrt(dx * dx + dy * dy) || 1, f = 0.2 + 0.18 * m.rank;
        var sx = a[0] + dx / L * 10, sy = a[1] + dy / L * 10, ex = b[0] - dx / L * 11, ey = b[1] - dy / L * 11;
        path = "M" + sx + "," + sy + " Q" + ((sx + ex) / 2 + f * dy) + "," + ((sy + ey) / 2 - f * dx) + " "
          + ex + "," + ey;
      }
      tip(el("path", {d: path, fill: "none", stroke: c, "stroke-width": width(m.score, top),
        "marker-end": "url(#" + root.id + "-m" + c.slice(1) + ")", "class": "hg-graph-msg", "data-round": m.round,
        "data-msg": m.u + "->" + m.v, "data-value": m.score === null ? "" : String(m.score)}, layer),
        "round " + m.round + ", " + m.u + "->" + m.v + (m.score === null ? "" : ": " + m.score));
    });
    label.textContent = "round " + r + ": " + k + " message" + (k === 1 ? "" : "s");
  }
  slider.addEventListener("input", function(){ show(+slider.value); });
  var h = /round=(\d+)/.exec(window.location.hash || "");
  show(h ? +h[1] : d.start_round);
}

window.hookgnnRender = function(id){
  var root = document.getElementById(id);
  try {
    var d = JSON.parse(root.querySelector("script.hg-data").textContent);
    (d.kind === "heatmap" ? heatmap : circuit)(root, d);
  } catch (err) {
    root.querySelector(".hg-errors").textContent += String(err && err.stack || err) + "\n";
  }
};
})();
"""
