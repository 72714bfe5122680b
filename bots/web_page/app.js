// The chat page: attach photos (shrunk here to the server's pixel budget), ask, read the answer as
// it streams. The session id lives in localStorage so the conversation survives a reload.
"use strict";

const SESSION_KEY = "visionbot.session";
const API_KEY = "visionbot.apiKey";
const JPEG_QUALITY = 0.85;

const $ = (id) => document.getElementById(id);
const { renderMarkdown } = window.visionbotMarkdown;

const state = { config: null, attachments: [], busy: false };

function session() {
  return localStorage.getItem(SESSION_KEY);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim() || localStorage.getItem(API_KEY);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = !text;
}

function scrollToEnd() {
  window.scrollTo({ top: document.body.scrollHeight });
}

// -- rendering -----------------------------------------------------------------------------

function addMessage(role, text, images) {
  $("empty").hidden = true;
  const item = document.createElement("article");
  item.className = "message " + role;
  if (images && images.length) {
    const row = document.createElement("div");
    row.className = "images";
    for (const src of images) {
      const img = document.createElement("img");
      img.src = src; // always a data: URL made by the browser or the server
      img.alt = "attached photo";
      row.appendChild(img);
    }
    item.appendChild(row);
  }
  const body = document.createElement("div");
  body.className = "text";
  item.appendChild(body);
  setText(item, role, text);
  $("log").appendChild(item);
  scrollToEnd();
  return item;
}

function setText(item, role, text) {
  const body = item.querySelector(".text");
  if (role === "assistant") {
    body.innerHTML = renderMarkdown(text); // escapes everything first; see markdown.js
  } else {
    body.textContent = text;
  }
  body.hidden = !text;
}

function setStatus(item, text) {
  let status = item.querySelector(".status");
  if (!status) {
    status = document.createElement("div");
    status.className = "status";
    item.appendChild(status);
  }
  status.textContent = text;
  status.hidden = !text;
}

function showError(item, text) {
  item.classList.add("error");
  setStatus(item, "");
  setText(item, "user", text); // plain text, never markup
}

function clearLog() {
  for (const node of [...$("log").querySelectorAll(".message")]) node.remove();
  $("empty").hidden = false;
}

// -- attachments ---------------------------------------------------------------------------

async function shrink(file) {
  // Decoding in the browser also applies the photo's EXIF rotation.
  const bitmap = await createImageBitmap(file);
  const budget = state.config ? state.config.max_pixels : 448 * 448;
  const scale = Math.min(1, Math.sqrt(budget / (bitmap.width * bitmap.height)));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.floor(bitmap.width * scale));
  canvas.height = Math.max(1, Math.floor(bitmap.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; // transparent areas become white, as the server does too
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return canvas.toDataURL("image/jpeg", JPEG_QUALITY);
}

async function attach(files) {
  const limit = state.config ? state.config.max_images : 4;
  for (const file of files) {
    if (!file.type.startsWith("image/")) {
      showNotice(`"${file.name}" is not an image.`);
      continue;
    }
    if (state.attachments.length >= limit) {
      showNotice(`Up to ${limit} photos per message.`);
      break;
    }
    try {
      state.attachments.push(await shrink(file));
      showNotice("");
    } catch (error) {
      showNotice(`"${file.name}" could not be read as an image.`);
    }
  }
  renderAttachments();
}

function renderAttachments() {
  const box = $("attachments");
  box.replaceChildren();
  state.attachments.forEach((src, index) => {
    const chip = document.createElement("div");
    chip.className = "chip";
    const img = document.createElement("img");
    img.src = src;
    img.alt = "photo to send";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = "Remove this photo";
    remove.addEventListener("click", () => {
      state.attachments.splice(index, 1);
      renderAttachments();
    });
    chip.append(img, remove);
    box.appendChild(chip);
  });
}

// -- talking to the server -----------------------------------------------------------------

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.error === "string") return body.error;
  } catch (ignored) {
    // not JSON: fall through to a generic text
  }
  return `The server answered ${response.status}.`;
}

function* parseEvents(buffer) {
  // Server-sent events are separated by blank lines; each has "event:" and "data:" lines.
  for (const block of buffer) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length) yield [name, JSON.parse(data.join("\n"))];
  }
}

async function ask(question, images) {
  addMessage("user", question, images);
  const reply = addMessage("assistant", "", []);
  setStatus(reply, "Sending…");
  let response;
  try {
    response = await fetch("/chat/stream", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ query: question, images, session: session() || "new" }),
    });
  } catch (error) {
    showError(reply, "Cannot reach the server. Is it running?");
    return;
  }
  if (!response.ok) {
    const message = await errorText(response);
    if (response.status === 401) $("key-row").hidden = false;
    if (response.status === 400 && message.startsWith("Unknown session")) {
      localStorage.removeItem(SESSION_KEY);
    }
    showError(reply, message);
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let answer = "";
  let finished = false;
  while (!finished) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    const blocks = pending.split("\n\n");
    pending = blocks.pop();
    for (const [name, data] of parseEvents(blocks)) {
      if (name === "session") {
        localStorage.setItem(SESSION_KEY, data.session);
      } else if (name === "queued") {
        setStatus(reply, data.position === 1 ? "Next in line…" : `In the queue: position ${data.position}`);
      } else if (name === "started") {
        setStatus(reply, "Thinking…");
      } else if (name === "delta") {
        answer += data.text;
        setStatus(reply, "");
        setText(reply, "assistant", answer);
        scrollToEnd();
      } else if (name === "done") {
        setText(reply, "assistant", data.text || "(no answer)");
        setStatus(reply, "");
        finished = true;
      } else if (name === "error") {
        showError(reply, data.error);
        finished = true;
      }
    }
  }
  if (!finished) showError(reply, "The answer was cut off. Please ask again.");
  reply.classList.add("done");
}

async function send(event) {
  if (event) event.preventDefault();
  const box = $("question");
  const question = box.value.trim();
  if (state.busy || (!question && !state.attachments.length)) return;
  const limit = state.config ? state.config.max_text_chars : 4000;
  if (question.length > limit) {
    showNotice(`Please keep the question under ${limit} characters.`);
    return;
  }
  const key = $("api-key").value.trim();
  if (key) localStorage.setItem(API_KEY, key);
  const images = state.attachments;
  state.attachments = [];
  renderAttachments();
  box.value = "";
  showNotice("");
  state.busy = true;
  $("send").disabled = true;
  try {
    await ask(question, images);
  } finally {
    state.busy = false;
    $("send").disabled = false;
    box.focus();
  }
}

async function loadHistory() {
  const id = session();
  if (!id) return;
  const response = await fetch("/chat/sessions/" + encodeURIComponent(id), { headers: headers() });
  if (response.status === 404) {
    localStorage.removeItem(SESSION_KEY);
    return;
  }
  if (!response.ok) {
    showNotice("Could not load the conversation: " + (await errorText(response)));
    if (response.status === 401) $("key-row").hidden = false;
    return;
  }
  const history = await response.json();
  for (const turn of history.turns) {
    const item = addMessage(turn.role, turn.text, turn.images);
    item.classList.add("done");
  }
}

async function start() {
  const response = await fetch("/chat/config");
  state.config = await response.json();
  $("model").textContent = state.config.model;
  const storedKey = localStorage.getItem(API_KEY);
  if (state.config.auth_required) $("key-row").hidden = false;
  if (storedKey) $("api-key").value = storedKey;
  try {
    await loadHistory();
  } catch (error) {
    showNotice("Could not load the conversation.");
  }
  document.body.dataset.ready = "true";
}

// -- wiring --------------------------------------------------------------------------------

$("composer").addEventListener("submit", send);
$("key-row").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(API_KEY, $("api-key").value.trim());
  $("question").focus();
});
$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
});
$("file").addEventListener("change", (event) => {
  attach([...event.target.files]);
  event.target.value = "";
});
$("new-chat").addEventListener("click", () => {
  localStorage.removeItem(SESSION_KEY);
  state.attachments = [];
  renderAttachments();
  clearLog();
  showNotice("");
  $("question").focus();
});
document.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData ? event.clipboardData.files : [])];
  if (files.length) {
    event.preventDefault();
    attach(files);
  }
});
let dragDepth = 0;
document.addEventListener("dragenter", (event) => {
  if (![...event.dataTransfer.types].includes("Files")) return;
  dragDepth++;
  $("drop").hidden = false;
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) $("drop").hidden = true;
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  $("drop").hidden = true;
  attach([...event.dataTransfer.files]);
});

start();
