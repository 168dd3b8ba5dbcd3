// The annotation page. Paragraph text and labels are only ever set with
// textContent, never as HTML. The page moves on only after the server has
// written the decision to disk and answered.
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;
let codebook = null;
let selection = { stance: null, frames: new Set() };
let busy = false;
let toastTimer = null;

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
  toastTimer = setTimeout(() => { node.className = "toast"; }, kind === "error" ? 6000 : 1400);
}

function pct(p) { return `${Math.round(p * 100)}%`; }

function optionButton(label, pressed, probability, suggested, onClick) {
  const button = el("button", "option");
  button.type = "button";
  button.dataset.name = label.name;
  button.setAttribute("aria-pressed", pressed ? "true" : "false");
  button.title = label.definition;
  button.append(el("kbd", "key", label.key), el("span", "name", label.name.replace(/_/g, " ")));
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
  const stanceBox = $("stance");
  stanceBox.replaceChildren(...codebook.stance.labels.map((label) => optionButton(
    label, selection.stance === label.name,
    suggestion && suggestion.stance_probs ? suggestion.stance_probs[label.name] : undefined,
    suggestion && suggestion.stance === label.name,
    () => { selection.stance = label.name; renderOptions(); })));
  const frameBox = $("frames");
  frameBox.replaceChildren(...codebook.frames.labels.map((label) => optionButton(
    label, selection.frames.has(label.name),
    suggestion && suggestion.frame_probs ? suggestion.frame_probs[label.name] : undefined,
    suggestion && (suggestion.frames || []).includes(label.name),
    () => { toggleFrame(label.name); })));
}

function toggleFrame(name) {
  if (selection.frames.has(name)) selection.frames.delete(name); else selection.frames.add(name);
  renderOptions();
}

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
  $("annotator").textContent = state.annotator;
  $("file").textContent = `saving to ${state.file}`;
  renderProgress(state.progress);
  $("undo").disabled = !state.can_undo;
  const p = state.paragraph;
  document.querySelector(".reader").hidden = !p;
  document.querySelector(".labels").hidden = !p;
  $("finished").hidden = !!p;
  if (!p) {
    const pr = state.progress;
    $("finished-text").textContent = `All ${pr.total} paragraphs of this queue are done: ${pr.done} labelled, ${pr.skipped} skipped. ` +
      (state.can_undo ? "Undo (Backspace) still takes back the last decision." : "");
    return;
  }
  $("doc-title").textContent = p.title;
  $("doc-id").textContent = p.title === p.doc_id ? "" : p.doc_id;
  $("doc-where").textContent = `· ${p.kind} · paragraph ${p.position} of ${p.doc_size}`;
  $("revisit").hidden = !p.revisit;
  $("before").textContent = p.before ? p.before.text : "";
  $("before").hidden = !p.before;
  $("text").textContent = p.text;
  $("text").dataset.id = p.id;
  $("after").textContent = p.after ? p.after.text : "";
  $("after").hidden = !p.after;
  const start = p.previous || p.suggestion || null;
  selection = { stance: start ? start.stance || null : null, frames: new Set(start ? start.frames || [] : []) };
  if (document.activeElement === $("note")) $("note").blur();  // a new paragraph never starts inside the note
  $("note").value = p.previous ? p.previous.note || "" : "";
  const info = $("suggest-info");
  if (p.previous) {
    info.hidden = false;
    info.textContent = "Your earlier labels are filled in; change them or press Enter.";
  } else if (p.suggestion && state.suggest) {
    info.hidden = false;
    const models = Object.entries(state.suggest.models).map(([task, name]) => `${task}: ${name}`).join(", ");
    info.textContent = `Model suggestion pre-selected (${models}). Bars show its probabilities.`;
  } else {
    info.hidden = true;
  }
  renderOptions();
}

async function act(path, body, message) {
  if (busy) return;
  busy = true;
  document.body.classList.add("busy");
  try {
    render(await api("POST", path, body));
    if (message) toast(message);
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
  if (!selection.stance) { toast("Choose a stance first (keys 1–4).", "error"); return; }
  act("/api/label", { paragraph_id: p.id, hash: p.hash, stance: selection.stance, frames: [...selection.frames], note: $("note").value }, "Saved");
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
      row.append(el("kbd", "key", label.key), el("strong", null, label.name.replace(/_/g, " ")), el("p", null, label.definition));
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
  if (!codebook) return;
  const key = event.key;
  const stance = codebook.stance.labels.find((l) => l.key === key);
  const frame = codebook.frames.labels.find((l) => l.key === key.toLowerCase());
  if (stance) { selection.stance = stance.name; renderOptions(); }
  else if (frame) { toggleFrame(frame.name); }
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
    render(await api("GET", "/api/state"));
  } catch (error) {
    toast(`Cannot reach the annotation server: ${error.message}`, "error");
    return;
  }
  document.addEventListener("keydown", onKey);
  $("accept").addEventListener("click", accept);
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("open-codebook").addEventListener("click", () => toggleCodebook(true));
  $("close-codebook").addEventListener("click", () => toggleCodebook(false));
  $("codebook").addEventListener("click", (event) => { if (event.target === $("codebook")) toggleCodebook(false); });
  document.body.dataset.ready = "true";
}

start();
