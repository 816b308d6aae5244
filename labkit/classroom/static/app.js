// labkit classroom: the instructor's live grid. No framework, no build step, works offline.
// The server sends a snapshot on connect, then one "result" per stored event (with the
// learner's recomputed row), and a "tick" heartbeat that refreshes the "stuck" marks.
"use strict";

const state = { exercises: [], learners: new Map(), now: Date.now() / 1000, window: 600, rule: "" };

// The page's sentences in the server's language (labkit.classroom.view.PAGE_TEXT, put in the page
// by the server). English is the fallback, so the page reads the same when opened as a plain file.
const TEXT = Object.assign({
  title: "labkit classroom", live: "live", lost: "connection lost: reconnecting…",
  legend: "✔ passed (checks) · ✗ not yet (checks) · H{n} highest hint tier asked · ⚠ stuck · — not started.",
  empty: "No learner has joined yet. Learners run the join command printed by {command}.",
  learner: "Learner", passed_column: "Passed", last_activity: "Last activity", lesson: "Lesson {lesson}",
  other: "Other", not_started: "not started", passed_one: "passed, {n} check", passed_many: "passed, {n} checks",
  not_yet_one: "not yet, {n} check", not_yet_many: "not yet, {n} checks", no_check: "no check yet",
  stuck: "stuck", last_at: "last at {time}", hint_asked: "hint {level} asked", stuck_on: " (⚠ stuck on {n})",
  learners_one: "{n} learner, {exercises} exercises", learners_many: "{n} learners, {exercises} exercises",
  stuck_names: "; stuck: {names}", nobody_stuck: "; nobody stuck", rule: "({rule}.)",
  status_passed: "passed", status_not_yet: "not yet",
  announce_hint: "{learner} asked hint {level} for {exercise}",
  announce_check: "{learner} checked {exercise}: {status}", announce_other: "{learner} checked {exercise}",
}, JSON.parse(document.getElementById("labkit-text").textContent || "{}"));

// One sentence with its {placeholders} filled.
function t(key, values) {
  return TEXT[key].replace(/\{(\w+)\}/g, (whole, name) => (values && name in values ? String(values[name]) : whole));
}

// A sentence with one placeholder standing for a node (the legend's <i>n</i>, the empty page's <code>).
function withNode(key, name, node) {
  const [before, after] = TEXT[key].split(`{${name}}`);
  return after === undefined ? [before] : [before, node, after];
}

function translatePage() {
  if (TEXT.lang) document.documentElement.lang = TEXT.lang;
  document.title = TEXT.title;
  for (const node of document.querySelectorAll("[data-text]")) {
    if (TEXT[node.dataset.text]) node.textContent = TEXT[node.dataset.text];
  }
  document.getElementById("legend").replaceChildren(...withNode("legend", "n", el("i", {}, "n")));
  document.getElementById("empty").replaceChildren(...withNode("empty", "command", el("code", {}, "labkit classroom serve")));
}

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
  lessons.replaceChildren(el("th", { scope: "col", rowspan: "2" }, t("learner")),
                          el("th", { scope: "col", rowspan: "2" }, t("passed_column")),
                          el("th", { scope: "col", rowspan: "2" }, t("last_activity")));
  columns.replaceChildren();
  let previous = null;
  let group = null;
  for (const exercise of state.exercises) {
    if (exercise.lesson !== previous) {
      group = el("th", { scope: "colgroup", colspan: "1" }, exercise.lesson ? t("lesson", { lesson: exercise.lesson }) : t("other"));
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
    detail.push(t("not_started"));
  } else {
    if (cell.passed === true) {
      td.className = "passed";
      text = `✔ ${cell.attempts}`;
      detail.push(t(cell.attempts === 1 ? "passed_one" : "passed_many", { n: cell.attempts }));
    } else if (cell.attempts > 0) {
      td.className = "failed";
      text = `✗ ${cell.attempts}`;
      detail.push(t(cell.attempts === 1 ? "not_yet_one" : "not_yet_many", { n: cell.attempts }));
    } else {
      td.className = "failed";
      text = "…";
      detail.push(t("no_check"));
    }
    if (isStuck(cell)) {
      td.classList.add("stuck");
      text = `⚠ ${text}`;
      detail.push(t("stuck"));
    }
    detail.push(t("last_at", { time: clock(cell.last_at) }));
  }
  td.append(el("span", { "aria-hidden": "true" }, text));
  if (cell && cell.hint_level) {
    td.append(el("span", { class: "badge", "aria-hidden": "true" }, `H${cell.hint_level}`));
    detail.splice(1, 0, t("hint_asked", { level: cell.hint_level }));
  }
  td.append(el("span", { class: "sr" }, `${exercise.id}: ${detail.join(", ")}`));
  td.title = detail.join(", ");
  return td;
}

function renderRow(row) {
  const stuckCount = Object.values(row.cells).filter(isStuck).length;
  const tr = el("tr", { "data-learner": row.name },
    el("th", { scope: "row" }, row.name, stuckCount ? el("span", { class: "when" }, t("stuck_on", { n: stuckCount })) : ""),
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
    t(names.length === 1 ? "learners_one" : "learners_many", { n: names.length, exercises: state.exercises.length }) +
    (stuck.length ? t("stuck_names", { names: stuck.join(", ") }) : t("nobody_stuck"));
  const rule = TEXT.stuck_rule || state.rule;
  document.getElementById("rule").textContent = rule ? t("rule", { rule }) : "";
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
  const status = TEXT[`status_${String(event.status).replace(" ", "_")}`] || event.status;
  const key = event.kind === "hint" ? "announce_hint" : event.kind === "check" ? "announce_check" : "announce_other";
  document.getElementById("announce").textContent =
    t(key, { learner: event.learner, level: event.hint_level, exercise: event.exercise, status });
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("api/stream");
  source.addEventListener("open", () => { status.textContent = t("live"); status.className = "live"; });
  source.addEventListener("error", () => {
    status.textContent = t("lost");
    status.className = "down";
  });
  source.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
  source.addEventListener("result", (e) => onResult(JSON.parse(e.data)));
  source.addEventListener("tick", (e) => { state.now = JSON.parse(e.data).now; renderAll(); });
}

document.addEventListener("DOMContentLoaded", () => { translatePage(); connect(); });
