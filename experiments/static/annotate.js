// The annotation page. Paragraph text and labels are only ever set with
// textContent, never as HTML. The page moves on only after the server has
// written the decision to disk and answered.
"use strict";

const $ = (id) => document.getElementById(id);
const SIDE_KEYS = "abcdfijkmpqtuvwxyz";  // keys that take a side in review (none is a label key)
let state = null;
let codebook = null;
let selection = { stance: null, frames: new Set() };
let spans = [];
let busy = false;
let toastTimer = null;
let learnTimer = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    let detail = data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return data;
}

function toast(message, kind) {
  const node = $("toast");
  node.textContent = message;
  node.className = `toast show ${kind || ""}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.className = "toast"; }, kind === "error" || kind === "warn" ? 6000 : 1400);
}

function pct(p) { return `${Math.round(p * 100)}%`; }
const pretty = (name) => name.replace(/_/g, " ");
const reviewing = () => state && state.mode === "review";

function optionButton(label, pressed, probability, suggested, onClick) {
  const button = el("button", "option");
  button.type = "button";
  button.dataset.name = label.name;
  button.setAttribute("aria-pressed", pressed ? "true" : "false");
  button.title = label.definition;
  button.append(el("kbd", "key", label.key), el("span", "name", pretty(label.name)));
  if (probability !== undefined) {
    const meter = el("span", "prob");
    const fill = el("span", "prob-fill");
    fill.style.width = pct(probability);
    meter.append(fill);
    button.append(meter, el("span", "prob-text", pct(probability)));
  }
  if (suggested) button.classList.add("suggested");
  button.addEventListener("click", onClick);
  return button;
}

function renderOptions() {
  const p = state && state.paragraph;
  const suggestion = p && p.suggestion;
  $("stance").replaceChildren(...codebook.stance.labels.map((label) => optionButton(
    label, selection.stance === label.name,
    suggestion && suggestion.stance_probs ? suggestion.stance_probs[label.name] : undefined,
    suggestion && suggestion.stance === label.name,
    () => { selection.stance = label.name; renderOptions(); })));
  $("frames").replaceChildren(...codebook.frames.labels.map((label) => optionButton(
    label, selection.frames.has(label.name),
    suggestion && suggestion.frame_probs ? suggestion.frame_probs[label.name] : undefined,
    suggestion && (suggestion.frames || []).includes(label.name),
    () => { toggleFrame(label.name); })));
}

function toggleFrame(name) {
  if (selection.frames.has(name)) selection.frames.delete(name); else selection.frames.add(name);
  renderOptions();
}

// ---------------------------------------------------------------- rationales

// The paragraph with every rationale span highlighted: pieces of text between span
// boundaries, each piece a <mark> when a span covers it.
function paintText(node, text, marked) {
  const cuts = new Set([0, text.length]);
  for (const s of marked) { cuts.add(s.start); cuts.add(s.end); }
  const points = [...cuts].sort((a, b) => a - b);
  const parts = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    const covering = marked.filter((s) => s.start <= a && s.end >= b);
    if (!covering.length) { parts.push(document.createTextNode(text.slice(a, b))); continue; }
    const mark = el("mark", covering.some((s) => s.label === "stance") ? "r-stance" : "r-frame", text.slice(a, b));
    mark.title = `rationale for ${[...new Set(covering.map((s) => pretty(s.label)))].join(", ")}`;
    parts.push(mark);
  }
  node.replaceChildren(...parts);
}

function renderSpans() {
  const p = state && state.paragraph;
  if (!p) return;
  paintText($("text"), p.text, spans);
  $("spans").replaceChildren(...spans.map((s, i) => {
    const chip = el("span", `chip ${s.label === "stance" ? "r-stance" : "r-frame"}`);
    chip.append(el("span", "chip-text", `“${s.text}”`), el("span", "chip-label", pretty(s.label)));
    const remove = el("button", "chip-remove", "×");
    remove.type = "button";
    remove.title = "remove this rationale";
    remove.addEventListener("click", () => { spans.splice(i, 1); renderSpans(); });
    chip.append(remove);
    return chip;
  }));
}

function renderRationaleChoices() {
  const choices = [["stance", "the stance"], ...codebook.frames.labels.map((l) => [l.name, `frame: ${pretty(l.name)}`])];
  $("rationale-for").replaceChildren(...choices.map(([value, text]) => {
    const option = el("option", null, text);
    option.value = value;
    return option;
  }));
}

function offsetIn(container, node, offset) {
  const range = document.createRange();
  range.selectNodeContents(container);
  range.setEnd(node, offset);
  return range.toString().length;
}

function onSelect() {
  const p = state && state.paragraph;
  const chosen = window.getSelection();
  if (!p || !chosen || chosen.isCollapsed || !chosen.rangeCount) return;
  const range = chosen.getRangeAt(0);
  const box = $("text");
  if (!box.contains(range.startContainer) || !box.contains(range.endContainer)) return;
  let start = offsetIn(box, range.startContainer, range.startOffset);
  let end = offsetIn(box, range.endContainer, range.endOffset);
  while (start < end && /\s/.test(p.text[start])) start++;
  while (end > start && /\s/.test(p.text[end - 1])) end--;
  chosen.removeAllRanges();
  if (end <= start) return;
  const label = $("rationale-for").value || "stance";
  if (!spans.some((s) => s.start === start && s.end === end && s.label === label)) {
    spans.push({ start, end, text: p.text.slice(start, end), label });
    spans.sort((a, b) => a.start - b.start || a.end - b.end);
  }
  renderSpans();
}

// ---------------------------------------------------------------- learning panel

function renderLearning(learning) {
  const box = $("learning");
  box.hidden = !learning || !learning.model;
  if (box.hidden) return;
  const status = { waiting: "waiting for labels", training: "training…", ready: `v${learning.version}`, failed: "training failed" }[learning.status] || learning.status;
  const next = learning.next_in === null ? "" : ` · retrains in ${learning.next_in} label${learning.next_in === 1 ? "" : "s"}`;
  $("learn-status").textContent = `${learning.model} · ${status}${learning.status === "ready" ? `, from ${learning.trained_on} label${learning.trained_on === 1 ? "" : "s"}` : ""}${next}`;
  $("learn-status").dataset.version = learning.version;
  const lines = (learning.quality || []).map((q) => q.macro_f1 === null
    ? `${q.task}: quality needs 10 labels (${q.n} so far)`
    : `${q.task} macro-F1 ${q.macro_f1.toFixed(2)} [${q.ci[0].toFixed(2)}, ${q.ci[1].toFixed(2)}] (n=${q.n}, ${q.protocol})`);
  if (learning.error) lines.push(learning.error);
  if (learning.order === "uncertain") lines.push("Queue: least sure first, with variety; re-ranked at each training.");
  $("learn-quality").textContent = lines.length ? lines.join("\n") : "Quality appears after the first training.";
  const counts = [...Object.entries(learning.stance_counts), ...Object.entries(learning.frame_counts)];
  $("learn-counts").replaceChildren(...counts.map(([name, n], i) => {
    const cell = el("span", `count-cell ${i < Object.keys(learning.stance_counts).length ? "c-stance" : "c-frame"}`);
    cell.append(el("span", "count-name", pretty(name)), el("strong", "count-n", n));
    return cell;
  }));
}

async function pollLearning() {
  if (reviewing() || document.hidden) return;
  try {
    const data = await api("GET", "/api/learning");
    renderLearning(data.learning);
    renderProgress(data.progress);
  } catch (error) { /* the next poll tries again */ }
}

// ---------------------------------------------------------------- review

function renderSides(p) {
  $("sides").replaceChildren(...p.sides.map((side, i) => {
    const card = el("div", "side");
    const head = el("div", "side-head");
    const take = el("button", "take", null);
    take.type = "button";
    take.append(el("kbd", "key", SIDE_KEYS[i]), el("span", null, ` take ${side.annotator}'s labels`));
    take.addEventListener("click", () => adjudicate({ take: side.annotator }));
    head.append(take);
    card.append(head, el("p", "side-labels", `${side.stance} · ${side.frames.length ? side.frames.map(pretty).join(", ") : "no frames"}`));
    if (side.rationales.length) card.append(el("p", "side-rationale", side.rationales.map((s) => `“${s.text}” (${pretty(s.label)})`).join("  ")));
    else if (side.rationale) card.append(el("p", "side-rationale", side.rationale));
    if (side.note) card.append(el("p", "side-note", `Note: ${side.note}`));
    return card;
  }));
}

function adjudicate(choice) {
  const p = state && state.paragraph;
  if (!p) return;
  const body = { paragraph_id: p.id, hash: p.hash, reason: $("note").value, rationales: spans };
  if (choice.take) body.take = choice.take;
  else {
    if (!selection.stance) { toast("Choose a stance first (keys 1–4).", "error"); return; }
    if (!$("note").value.trim()) { toast("New labels need a reason: press n and write it.", "error"); return; }
    body.stance = selection.stance;
    body.frames = [...selection.frames];
  }
  act("/api/adjudicate", body, "Adjudicated");
}

// ---------------------------------------------------------------- page

function renderProgress(progress) {
  $("count-done").textContent = progress.done;
  $("count-left").textContent = progress.left;
  $("count-skipped").textContent = progress.skipped;
  const total = Math.max(progress.total, 1);
  $("bar-done").style.width = `${(100 * progress.done) / total}%`;
  $("bar-skipped").style.width = `${(100 * progress.skipped) / total}%`;
}

function render(next) {
  state = next;
  const review = reviewing();
  $("brand").textContent = review ? "Review" : "Annotate";
  $("annotator").textContent = state.annotator;
  $("practice").hidden = !state.practice;
  $("file").textContent = `saving to ${state.file}`;
  renderProgress(state.progress);
  renderLearning(state.learning);
  $("undo").hidden = review;
  $("undo").disabled = !state.can_undo;
  $("review").hidden = !review;
  $("accept").firstChild.textContent = review ? "Save my labels " : "Accept ";
  $("note-label").firstChild.textContent = review ? "Reason " : "Note ";
  $("note").placeholder = review ? "Why these labels (needed for new labels)" : "Anything the adjudicator should know";
  const p = state.paragraph;
  document.querySelector(".reader").hidden = !p;
  document.querySelector(".labels").hidden = !p;
  $("finished").hidden = !!p;
  if (state.notice) toast(state.notice, "warn");
  if (!p) {
    const pr = state.progress;
    $("finished-text").textContent = review
      ? `No open disagreement left: ${pr.done} adjudicated this session. Run \`python -m experiments corpus\` to rebuild gold.`
      : `All ${pr.total} paragraphs of this queue are done: ${pr.done} labelled, ${pr.skipped} skipped. ` +
        (state.can_undo ? "Undo (Backspace) still takes back the last decision." : "");
    return;
  }
  $("doc-title").textContent = p.title;
  $("doc-id").textContent = p.title === p.doc_id ? "" : p.doc_id;
  $("doc-where").textContent = `· ${p.kind} · paragraph ${p.position} of ${p.doc_size}`;
  $("revisit").hidden = !p.revisit;
  $("before").textContent = p.before ? p.before.text : "";
  $("before").hidden = !p.before;
  $("text").dataset.id = p.id;
  $("after").textContent = p.after ? p.after.text : "";
  $("after").hidden = !p.after;
  const start = review ? null : (p.previous || p.suggestion || null);
  selection = { stance: start ? start.stance || null : null, frames: new Set(start ? start.frames || [] : []) };
  spans = p.previous && p.previous.rationales ? p.previous.rationales.map((s) => ({ ...s })) : [];
  renderSpans();
  if (document.activeElement === $("note")) $("note").blur();  // a new paragraph never starts inside the note
  $("note").value = p.previous ? p.previous.note || "" : "";
  const info = $("suggest-info");
  info.hidden = review;
  if (review) renderSides(p);
  else if (p.previous) info.textContent = "Your earlier labels are filled in; change them or press Enter.";
  else if (p.blind) info.textContent = "No suggestion for this paragraph (a blind item): your own reading is the measurement.";
  else if (p.suggestion) info.textContent = `Model suggestion pre-selected (${p.suggested_by}). Bars show its probabilities.`;
  else info.hidden = true;
  document.body.dataset.paragraph = p.id;
  renderOptions();
}

async function act(path, body, message) {
  if (busy) return;
  busy = true;
  document.body.classList.add("busy");
  try {
    render(await api("POST", path, body));
    if (message && !(state && state.notice)) toast(message);
  } catch (error) {
    toast(error.message, "error");
  } finally {
    busy = false;
    document.body.classList.remove("busy");
  }
}

function accept() {
  const p = state && state.paragraph;
  if (!p) return;
  if (reviewing()) { adjudicate({}); return; }
  if (!selection.stance) { toast("Choose a stance first (keys 1–4).", "error"); return; }
  act("/api/label", { paragraph_id: p.id, hash: p.hash, stance: selection.stance, frames: [...selection.frames],
    note: $("note").value, rationales: spans }, "Saved");
}

function skip() {
  const p = state && state.paragraph;
  if (!p) return;
  act("/api/skip", { paragraph_id: p.id, hash: p.hash, note: $("note").value }, "Skipped");
}

function undo() {
  if (state && state.can_undo) act("/api/undo", {}, "Undone: the paragraph is back");
}

function renderCodebook() {
  const body = $("codebook-body");
  const section = (title, part) => {
    const box = el("section", "cb-section");
    box.append(el("h3", null, title), el("p", "cb-question", part.question));
    for (const label of part.labels) {
      const row = el("div", "cb-label");
      row.append(el("kbd", "key", label.key), el("strong", null, pretty(label.name)), el("p", null, label.definition));
      if (label.cues && label.cues.length) row.append(el("p", "cb-cues", `Cues: ${label.cues.join("; ")}`));
      box.append(row);
    }
    if (part.rules && part.rules.length) {
      box.append(el("h4", null, "Decision rules"));
      for (const rule of part.rules) {
        const row = el("div", "cb-rule");
        row.append(el("strong", null, rule.title), el("p", null, rule.rule));
        box.append(row);
      }
    }
    return box;
  };
  body.replaceChildren(el("p", "cb-version", `Codebook version ${codebook.version}`),
    section("Stance", codebook.stance), section("Frames", codebook.frames));
}

function toggleCodebook(open) {
  const overlay = $("codebook");
  overlay.hidden = open === undefined ? !overlay.hidden : !open;
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const inNote = event.target === $("note");
  if (!$("codebook").hidden) {
    if (event.key === "Escape" || event.key === "?") { toggleCodebook(false); event.preventDefault(); }
    return;
  }
  if (inNote) {
    // Enter saves the note with the decision and leaves the field, so the next keys label again.
    if (event.key === "Enter") { event.preventDefault(); $("note").blur(); accept(); }
    else if (event.key === "Escape") { $("note").blur(); }
    return;
  }
  if (event.target === $("rationale-for")) return;
  if (!codebook) return;
  const key = event.key;
  const stance = codebook.stance.labels.find((l) => l.key === key);
  const frame = codebook.frames.labels.find((l) => l.key === key.toLowerCase());
  const side = reviewing() && state.paragraph ? state.paragraph.sides[SIDE_KEYS.indexOf(key)] : undefined;
  if (stance) { selection.stance = stance.name; renderOptions(); }
  else if (frame) { toggleFrame(frame.name); }
  else if (side && SIDE_KEYS.indexOf(key) >= 0) { adjudicate({ take: side.annotator }); }
  else if (key === "Enter") { accept(); }
  else if (key === " ") { skip(); }
  else if (key === "Backspace") { undo(); }
  else if (key === "?") { toggleCodebook(true); }
  else if (key === "n") { $("note").focus(); }
  else return;
  event.preventDefault();
}

async function start() {
  try {
    codebook = await api("GET", "/api/codebook");
    renderCodebook();
    renderRationaleChoices();
    render(await api("GET", "/api/state"));
  } catch (error) {
    toast(`Cannot reach the annotation server: ${error.message}`, "error");
    return;
  }
  document.addEventListener("keydown", onKey);
  $("text").addEventListener("mouseup", onSelect);
  $("text").addEventListener("touchend", () => setTimeout(onSelect, 0));
  $("accept").addEventListener("click", accept);
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("open-codebook").addEventListener("click", () => toggleCodebook(true));
  $("close-codebook").addEventListener("click", () => toggleCodebook(false));
  $("codebook").addEventListener("click", (event) => { if (event.target === $("codebook")) toggleCodebook(false); });
  if (!reviewing()) learnTimer = setInterval(pollLearning, 2000);
  document.body.dataset.ready = "true";
}

start();
