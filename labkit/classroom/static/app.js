// labkit classroom: the instructor's live grid. No framework, no build step, works offline.
// The server sends a snapshot on connect, then one "result" per stored event (with the
// learner's recomputed row), and a "tick" heartbeat that refreshes the "stuck" marks.
"use strict";

const state = { exercises: [], learners: new Map(), now: Date.now() / 1000, window: 600, rule: "" };

// The token came in the address (?token=...); the server has put it in a cookie, so drop it
// from the address bar where a projector or a screen share would show it.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "—";
}

function isStuck(cell) {
  return Boolean(cell && cell.struggling && state.now - cell.last_at <= state.window);
}

function shortName(exercise) {
  const dot = exercise.id.indexOf(".");
  return dot >= 0 ? exercise.id.slice(dot + 1) : exercise.id;
}

function renderHead() {
  const lessons = document.getElementById("lessons");
  const columns = document.getElementById("columns");
  lessons.replaceChildren(el("th", { scope: "col", rowspan: "2" }, "Learner"),
                          el("th", { scope: "col", rowspan: "2" }, "Passed"),
                          el("th", { scope: "col", rowspan: "2" }, "Last activity"));
  columns.replaceChildren();
  let previous = null;
  let group = null;
  for (const exercise of state.exercises) {
    if (exercise.lesson !== previous) {
      group = el("th", { scope: "colgroup", colspan: "1" }, exercise.lesson ? `Lesson ${exercise.lesson}` : "Other");
      lessons.append(group);
      previous = exercise.lesson;
    } else {
      group.colSpan += 1;
    }
    columns.append(el("th", { scope: "col", title: `${exercise.id}: ${exercise.title}` }, shortName(exercise)));
  }
}

function renderCell(name, exercise, cell) {
  const td = el("td", { "data-learner": name, "data-exercise": exercise.id });
  const detail = [];
  let text;
  if (!cell || (cell.attempts === 0 && !cell.hint_level)) {
    td.className = "none";
    text = "—";
    detail.push("not started");
  } else {
    if (cell.passed === true) {
      td.className = "passed";
      text = `✔ ${cell.attempts}`;
      detail.push(`passed, ${cell.attempts} check${cell.attempts === 1 ? "" : "s"}`);
    } else if (cell.attempts > 0) {
      td.className = "failed";
      text = `✗ ${cell.attempts}`;
      detail.push(`not yet, ${cell.attempts} check${cell.attempts === 1 ? "" : "s"}`);
    } else {
      td.className = "failed";
      text = "…";
      detail.push("no check yet");
    }
    if (isStuck(cell)) {
      td.classList.add("stuck");
      text = `⚠ ${text}`;
      detail.push("stuck");
    }
    detail.push(`last at ${clock(cell.last_at)}`);
  }
  td.append(el("span", { "aria-hidden": "true" }, text));
  if (cell && cell.hint_level) {
    td.append(el("span", { class: "badge", "aria-hidden": "true" }, `H${cell.hint_level}`));
    detail.splice(1, 0, `hint ${cell.hint_level} asked`);
  }
  td.append(el("span", { class: "sr" }, `${exercise.id}: ${detail.join(", ")}`));
  td.title = detail.join(", ");
  return td;
}

function renderRow(row) {
  const stuckCount = Object.values(row.cells).filter(isStuck).length;
  const tr = el("tr", { "data-learner": row.name },
    el("th", { scope: "row" }, row.name, stuckCount ? el("span", { class: "when" }, ` (⚠ stuck on ${stuckCount})`) : ""),
    el("td", {}, `${row.passed}/${state.exercises.length}`),
    el("td", { class: "when" }, clock(row.last_at)));
  for (const exercise of state.exercises) {
    tr.append(renderCell(row.name, exercise, row.cells[exercise.id]));
  }
  return tr;
}

function renderAll() {
  renderHead();
  const names = [...state.learners.keys()].sort((a, b) => a.localeCompare(b));
  document.getElementById("rows").replaceChildren(...names.map((n) => renderRow(state.learners.get(n))));
  document.getElementById("empty").hidden = names.length > 0;
  const stuck = names.filter((n) => Object.values(state.learners.get(n).cells).some(isStuck));
  document.getElementById("summary").textContent =
    `${names.length} learner${names.length === 1 ? "" : "s"}, ${state.exercises.length} exercises` +
    (stuck.length ? `; stuck: ${stuck.join(", ")}` : "; nobody stuck");
  document.getElementById("rule").textContent = state.rule ? `(${state.rule}.)` : "";
}

function onSnapshot(snap) {
  state.exercises = snap.exercises;
  state.learners = new Map(snap.learners.map((row) => [row.name, row]));
  state.now = snap.now;
  state.window = snap.stuck_window;
  state.rule = snap.stuck_rule;
  renderAll();
}

function onResult(message) {
  const event = message.event;
  if (!state.exercises.some((e) => e.id === event.exercise)) {
    state.exercises.push({ id: event.exercise, lesson: event.lesson || "", title: event.exercise });
  }
  state.now = Math.max(state.now, message.row.last_at);
  state.learners.set(message.row.name, message.row);
  renderAll();
  const cell = document.querySelector(
    `td[data-learner="${CSS.escape(event.learner)}"][data-exercise="${CSS.escape(event.exercise)}"]`);
  if (cell) cell.classList.add("flash");
  const what = event.kind === "hint" ? `asked hint ${event.hint_level} for` : `checked`;
  const outcome = event.kind === "check" ? `: ${event.status}` : "";
  document.getElementById("announce").textContent = `${event.learner} ${what} ${event.exercise}${outcome}`;
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("api/stream");
  source.addEventListener("open", () => { status.textContent = "live"; status.className = "live"; });
  source.addEventListener("error", () => {
    status.textContent = "connection lost: reconnecting…";
    status.className = "down";
  });
  source.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
  source.addEventListener("result", (e) => onResult(JSON.parse(e.data)));
  source.addEventListener("tick", (e) => { state.now = JSON.parse(e.data).now; renderAll(); });
}

document.addEventListener("DOMContentLoaded", connect);
