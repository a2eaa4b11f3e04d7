// The drawing pad's front end (anywidget ESM). The Python side owns the state: `strokes` (a list of strokes, each a
// list of [x, y] in [0, 1]) and `result` (what the model read). This file only draws, records pointer strokes
// and shows the result; the model never runs in the browser.

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// 0..1 -> an "inferno"-like colour, for the attention overlay.
function heat(v) {
  const stops = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
  const t = Math.max(0, Math.min(1, v)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t));
  const f = t - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}

function drawDigit(canvas, digit, size, att) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(size, size);
  const amax = att ? Math.max(...att, 1e-12) : 1;
  for (let i = 0; i < size * size; i++) {
    let rgb = [digit[i] * 255, digit[i] * 255, digit[i] * 255];
    if (att) {
      const h = heat(att[i] / amax);
      rgb = rgb.map((c, k) => 0.45 * c + 0.55 * h[k]);
    }
    img.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * i);
  }
  const tmp = document.createElement("canvas");
  tmp.width = tmp.height = size;
  tmp.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function render({ model, el: root }) {
  root.classList.add("vitlab-digitpad");
  const size = model.get("canvas_size");
  const wrap = el("div", "vdp-row");
  const left = el("div", "vdp-col");
  const pad = el("canvas", "vdp-canvas");
  pad.width = pad.height = size;
  pad.style.width = pad.style.height = size + "px";
  const buttons = el("div", "vdp-buttons");
  const bClear = el("button", "vdp-clear", "Clear");
  const bUndo = el("button", "vdp-undo", "Undo");
  const bSave = el("button", "vdp-save", "Save PNG");
  buttons.append(bClear, bUndo, bSave);
  const status = el("div", "vdp-status");
  left.append(pad, buttons, status);

  const right = el("div", "vdp-col vdp-result");
  const verdictBox = el("div", "vdp-prediction");
  const pics = el("div", "vdp-row");
  const seen = el("canvas", "vdp-seen");
  const att = el("canvas", "vdp-attention");
  seen.width = seen.height = att.width = att.height = 112;
  const seenBox = el("figure", "vdp-fig");
  seenBox.append(seen, el("figcaption", "", "what the model sees (28×28)"));
  const attBox = el("figure", "vdp-fig");
  const attCaption = el("figcaption", "", "attention rollout");
  attBox.append(att, attCaption);
  pics.append(seenBox, attBox);
  const bars = el("div", "vdp-bars");
  const check = el("div", "vdp-check");
  right.append(verdictBox, pics, bars, check);
  wrap.append(left, right);
  root.append(wrap);

  const ctx = pad.getContext("2d");
  let current = null; // the stroke being drawn, in [0, 1] coordinates
  let sentAt = null; // when the last stroke was handed to Python (performance.now())

  function paint() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    ctx.strokeStyle = ctx.fillStyle = "#000";
    ctx.lineWidth = model.get("pen") * size;
    ctx.lineCap = ctx.lineJoin = "round";
    const all = model.get("strokes").concat(current ? [current] : []);
    for (const s of all) {
      if (!s.length) continue;
      ctx.beginPath();
      ctx.moveTo(s[0][0] * size, s[0][1] * size);
      for (const p of s.slice(1)) ctx.lineTo(p[0] * size, p[1] * size);
      if (s.length === 1) ctx.lineTo(s[0][0] * size + 0.01, s[0][1] * size);
      ctx.stroke();
    }
  }

  function point(ev) {
    const r = pad.getBoundingClientRect();
    return [(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height];
  }
  function send(strokes) {
    sentAt = performance.now();
    model.set("strokes", strokes);
    model.save_changes();
  }
  pad.addEventListener("pointerdown", (ev) => {
    ev.preventDefault();
    pad.setPointerCapture(ev.pointerId);
    current = [point(ev)];
    paint();
  });
  pad.addEventListener("pointermove", (ev) => {
    if (!current) return;
    current.push(point(ev));
    paint();
  });
  const finish = () => {
    if (!current) return;
    const stroke = current;
    current = null;
    send(model.get("strokes").concat([stroke]));
    paint();
  };
  pad.addEventListener("pointerup", finish);
  pad.addEventListener("pointercancel", finish);
  bClear.addEventListener("click", () => send([]));
  bUndo.addEventListener("click", () => send(model.get("strokes").slice(0, -1)));
  bSave.addEventListener("click", () => model.send({ event: "save" }));

  function show() {
    const r = model.get("result");
    bars.replaceChildren();
    if (!r || !r.classes || r.empty || r.error) {
      verdictBox.textContent = r && r.error ? r.error : "draw a digit";
      verdictBox.dataset.class = "";
      check.textContent = "";
      for (const c of [seen, att]) c.getContext("2d").clearRect(0, 0, c.width, c.height);
      return;
    }
    verdictBox.textContent = `${r.predicted}  (${(100 * r.confidence).toFixed(1)}%)`;
    verdictBox.dataset.class = r.predicted;
    drawDigit(seen, r.digit, r.size, null);
    if (r.attention) {
      drawDigit(att, r.digit, r.size, r.attention);
      attBox.style.display = "";
    } else {
      attBox.style.display = "none"; // a CNN has no attention to show
    }
    r.classes.forEach((c, i) => {
      const row = el("div", "vdp-bar-row");
      const bar = el("div", "vdp-bar" + (c === r.predicted ? " vdp-top" : ""));
      bar.style.width = (100 * r.probs[i]).toFixed(1) + "%";
      const track = el("div", "vdp-track");
      track.append(bar);
      row.append(el("span", "vdp-label", c), track, el("span", "vdp-pct", (100 * r.probs[i]).toFixed(1) + "%"));
      bars.append(row);
    });
    if (r.digit_like === null || r.digit_like === undefined) {
      check.textContent = "";
    } else {
      check.textContent = r.digit_like
        ? `like a digit (score ${r.score.toFixed(3)} ≥ ${r.threshold.toFixed(3)})`
        : `not like a digit? (score ${r.score.toFixed(3)} < ${r.threshold.toFixed(3)})`;
      check.classList.toggle("vdp-warn", !r.digit_like);
    }
    if (sentAt !== null && r.n === model.get("strokes").length) {
      const ms = performance.now() - sentAt;
      root.dataset.latencyMs = ms.toFixed(1);
      root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
      sentAt = null;
    }
  }

  model.on("change:strokes", paint);
  model.on("change:result", show);
  model.on("change:status", () => (status.textContent = model.get("status")));
  paint();
  show();
  status.textContent = model.get("status");
}

export default { render };
