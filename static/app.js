// chinwag's browser page: wiring of the connection, the outbox, the store and the views.

import { Connection } from "./js/connection.js";
import { Outbox, newId } from "./js/outbox.js";
import { Store } from "./js/store.js";
import { parseCommand } from "./js/commands.js";
import { createSidebar } from "./js/ui/sidebar.js";
import { createThread } from "./js/ui/thread.js";
import { createComposer, textLength } from "./js/ui/composer.js";
import { createHeader } from "./js/ui/header.js";
import { createStatus } from "./js/ui/status.js";
import { createToasts, describeError } from "./js/ui/toasts.js";
import { createConfirm } from "./js/ui/dialog.js";

const SESSION_KEY = "chinwag.session.v1";
const TAB_KEY = "chinwag.tab";
const TOOLS_KEY = "chinwag.tools.v1";
const PAGE = 30;
const UNDO_MS = 5000; // how long a deleted conversation can be brought back
const TOOL_ROWS_KEPT = 20; // direct tool calls kept per conversation across a reload

// ------------------------------------------------------------------ per-tab persistence

const tabStore = safeSession();
const tabId = (tabStore && tabStore.getItem(TAB_KEY)) || newId("tab");
if (tabStore) tabStore.setItem(TAB_KEY, tabId);
const saved = readJSON(tabStore, SESSION_KEY);

const store = new Store();
store.restoreTurns(saved && saved.turns);
const draftPick = { model: "", template: "" };

const toasts = createToasts(document.getElementById("toasts"));
const status = createStatus(document.getElementById("connection-status"), document.getElementById("composer"));
const confirmDialog = createConfirm(document.getElementById("confirm-dialog"));

const conn = new Connection({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
  session: saved,
  onWelcome,
  onEvent,
  onState,
  onFatal,
  onReply: (frame) => {
    if (frame.type === "error") toasts.error(describeError(frame));
  },
});
const outbox = new Outbox({ tabId, onAck, onFail: onSendFailed });
outbox.attach(conn);

let persistTimer = 0;
function persist() {
  persistTimer = 0;
  if (!tabStore) return;
  saveToolRows();
  const snap = conn.snapshot();
  if (!snap) return;
  try {
    // last_seq and the running turns are written together: a reload resumes from exactly
    // the state it restores, so replayed events are applied once.
    tabStore.setItem(SESSION_KEY, JSON.stringify({ ...snap, turns: store.liveTurns() }));
  } catch {
    /* storage full: a reload falls back to history */
  }
}
function persistSoon() {
  if (!persistTimer) persistTimer = setTimeout(persist, 250);
}
window.addEventListener("pagehide", () => {
  persist();
  outbox.release();
  for (const commit of [...pendingDeletes.values()]) commit();
});

// ------------------------------------------------------------------ connection events

function onState(state) {
  if (state !== "connected") status.set(state);
  thread.setOnline(state === "connected");
}

function onFatal(code) {
  if (code === 4004) {
    status.set("offline", "Not logged in");
    location.assign("/login");
    return;
  }
  status.set("offline", code === 4011 ? "Access revoked" : "Offline");
  toasts.error(code === 4011 ? "This key was revoked; the page will not reconnect." : `Disconnected (${code}).`, { timeoutMs: 0 });
}

function onWelcome(welcome, resumed) {
  status.set("connected");
  thread.setOnline(true);
  if (!resumed) store.forgetLiveTurns();
  store.setWelcome(welcome);
  const user = welcome.user || {};
  document.getElementById("who").textContent = user.name ? `Signed in as ${user.name}` : "";
  document.getElementById("logout").hidden = !user.name || user.name === "local";
  persist();
  loadConversations();
  const cur = store.current;
  if (cur && !isDraft(cur)) loadHistory(cur);
  outbox.flush();
}

function onEvent(ev, gap) {
  switch (ev.type) {
    case "turn.started": {
      const t = store.threads.get(ev.conversation_id);
      const known = t && t.messages.some((m) => m.key === "m:" + ev.message_id);
      store.turnStarted(ev);
      touchConversation(ev.conversation_id);
      // A continued answer we never saw the start of: its text so far is in the history.
      if (ev.continued && !known && t && t.loaded) loadHistory(ev.conversation_id);
      break;
    }
    case "delta":
    case "tool.call":
    case "tool.output":
      if (!store.turnEvent(ev)) resyncCurrent();
      break;
    case "turn.completed": {
      const known = store.turnEvent(ev);
      const t = store.threads.get(ev.conversation_id);
      if ((!known || store.needsPoll(ev.conversation_id)) && t && t.loaded) loadHistory(ev.conversation_id);
      refreshConversationsSoon();
      break;
    }
    case "message":
      store.upsertServerMessage(ev.conversation_id, ev.message);
      touchConversation(ev.conversation_id);
      if (ev.conversation_id === store.current) schedulePoll();
      break;
    case "reconnect":
      status.set("reconnecting", "Server restarting…");
      break;
    default:
      break;
  }
  if (gap) resyncCurrent();
  persistSoon();
}

// ------------------------------------------------------------------ loading

async function loadConversations({ more = false, merge = false } = {}) {
  const frame = { type: "conversations", limit: PAGE };
  if (more) {
    const list = store.sortedConversations();
    if (list.length) frame.before = list[list.length - 1].id;
  }
  try {
    const reply = await conn.request(frame);
    // A deletion that can still be undone is not sent yet: keep it out of the list.
    reply.conversations = (reply.conversations || []).filter((c) => !pendingDeletes.has(c.id));
    if (merge) {
      // A refresh of the first page: keep the pages loaded with "Load more".
      const paged = store.conversations.size > (reply.conversations || []).length;
      store.setConversations(reply.conversations || [], paged ? store.hasMoreConversations : reply.has_more, { append: true });
    } else store.setConversations(reply.conversations || [], reply.has_more, { append: more });
  } catch (err) {
    if (err.code !== "disconnected") toasts.error(describeError(err, "Could not load conversations"));
  }
}

let refreshTimer = 0;
function refreshConversationsSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadConversations({ merge: true }), 400);
}

function touchConversation(id) {
  const conv = store.conversations.get(id);
  if (conv) store.upsertConversation({ id, updated_at: new Date().toISOString() });
  else refreshConversationsSoon();
}

const historyGen = new Map();
async function loadHistory(convId, { older = false } = {}) {
  const t = store.thread(convId);
  const gen = (historyGen.get(convId) || 0) + 1;
  historyGen.set(convId, gen);
  const frame = { type: "history", conversation_id: convId, limit: 50 };
  if (older) {
    const first = t.messages.find((m) => m.id);
    if (first) frame.before = first.id;
  }
  t.loading = !t.loaded;
  if (convId === store.current) thread.sync();
  try {
    const reply = await conn.request(frame);
    if (!older && historyGen.get(convId) !== gen) return; // a newer load is on its way
    store.learnConversation(reply.conversation);
    store.setHistory(convId, reply.messages || [], reply.has_more, { older });
    if (older) t.olderLoaded = true;
  } catch (err) {
    if (err.code === "not_found") {
      toasts.info("That conversation does not exist (any more).");
      store.removeConversation(convId);
      if (store.current === null || store.current === convId) newConversation();
    } else if (err.code !== "disconnected") {
      toasts.error(describeError(err, "Could not load messages"));
    }
  } finally {
    t.loading = false;
    if (convId === store.current) thread.sync();
  }
  if (convId === store.current) schedulePoll();
}

// A streaming message this page gets no events for (after a resume that could not be
// honoured, or a turn started by another tab): poll its history gently until it ends.
let pollTimer = 0;
let pollDelay = 1000;
function schedulePoll() {
  clearTimeout(pollTimer);
  const cur = store.current;
  if (!cur || isDraft(cur) || !store.needsPoll(cur)) {
    pollDelay = 1000;
    return;
  }
  pollTimer = setTimeout(() => {
    if (conn.ready && store.current === cur) loadHistory(cur);
    else schedulePoll();
  }, pollDelay);
  pollDelay = Math.min(5000, pollDelay + 1000);
}

let resyncTimer = 0;
function resyncCurrent() {
  clearTimeout(resyncTimer);
  resyncTimer = setTimeout(() => {
    const cur = store.current;
    if (cur && !isDraft(cur)) loadHistory(cur);
  }, 300);
}

// ------------------------------------------------------------------ navigation

const isDraft = (key) => typeof key === "string" && key.startsWith("draft:");

function hashId() {
  try {
    return decodeURIComponent(location.hash.slice(1)) || null;
  } catch {
    return null;
  }
}

function openConversation(id, messageId) {
  if (location.hash.slice(1) !== encodeURIComponent(id)) history.pushState(null, "", "#" + encodeURIComponent(id));
  store.setCurrent(id);
  pollDelay = 1000;
  const t = store.thread(id);
  const reveal = () => messageId && thread.reveal(messageId);
  if (!t.loaded) conn.whenReady(() => loadHistory(id).then(reveal));
  else {
    schedulePoll();
    reveal();
  }
  composer.focus();
}

function newConversation() {
  const cur = store.current;
  const t = cur && store.threads.get(cur);
  if (isDraft(cur) && t && !t.messages.length) return composer.focus();
  const key = "draft:" + newId("d");
  const draft = store.thread(key);
  draft.loaded = true;
  if (location.hash) history.pushState(null, "", location.pathname + location.search);
  store.setCurrent(key);
  composer.focus();
}

window.addEventListener("hashchange", () => {
  const id = hashId();
  if (id && id !== store.current) openConversation(id);
  else if (!id && !isDraft(store.current)) newConversation();
});
window.addEventListener("popstate", () => {
  const id = hashId();
  if (id && id !== store.current) openConversation(id);
  else if (!id && !isDraft(store.current)) newConversation();
});

// ------------------------------------------------------------------ sending

function userRow(item, extra = {}) {
  return { key: "u:" + item.client_msg_id, role: "user", text: item.text, status: "pending", local: true, client_msg_id: item.client_msg_id, ...extra };
}

function sendText(text) {
  let key = store.current;
  if (!key) {
    newConversation();
    key = store.current;
  }
  const draft = isDraft(key);
  const item = {
    client_msg_id: newId("c"),
    text,
    conversation_id: draft ? null : key,
    draft_key: draft ? key : null,
    model: draft ? draftPick.model || undefined : undefined,
    template: draft ? draftPick.template || undefined : undefined,
  };
  store.addLocal(key, userRow(item));
  thread.scrollToBottom();
  outbox.add(item);
}

function onAck(item, ack) {
  if (item.draft_key && !item.conversation_id) {
    outbox.bindDraft(item.draft_key, ack.conversation_id);
    const now = new Date().toISOString();
    if (!store.conversations.has(ack.conversation_id)) {
      store.upsertConversation({ id: ack.conversation_id, title: item.text.trim().slice(0, 60), created_at: now, updated_at: now, model: item.model, template: item.template });
    }
    const wasCurrent = store.current === item.draft_key;
    store.promoteDraft(item.draft_key, ack.conversation_id);
    if (wasCurrent) history.replaceState(null, "", "#" + encodeURIComponent(ack.conversation_id));
  }
  const shown = store.find(ack.conversation_id, "u:" + item.client_msg_id);
  store.ackUser(ack.conversation_id, item.client_msg_id, ack);
  // A message adopted from a closed tab has no row here: show it from the stored history.
  if (!shown && ack.conversation_id === store.current) resyncCurrent();
  touchConversation(ack.conversation_id);
  refreshConversationsSoon();
}

function onSendFailed(item, err) {
  const key = item.conversation_id || item.draft_key;
  store.addLocal(key, userRow(item, { status: "failed", failed: item.failed }));
  toasts.error(describeError(err, "Message not sent"));
}

/** Show the queued messages of this tab (after a reload, or adopted from a closed tab). */
function restoreOutbox() {
  for (const item of outbox.mine()) {
    const key = item.conversation_id || item.draft_key;
    if (!key) continue;
    if (isDraft(key)) store.thread(key).loaded = true;
    store.addLocal(key, userRow(item, item.failed ? { status: "failed", failed: item.failed } : {}));
  }
}

async function runTool(cmd) {
  let key = store.current;
  if (!key) {
    newConversation();
    key = store.current;
  }
  const part = { kind: "tool", call_id: newId("l"), name: cmd.name, args: cmd.args, state: "running" };
  const row = { key: "l:" + part.call_id, role: "local-tool", parts: [part], status: "complete", local: true, at: new Date().toISOString() };
  store.addLocal(key, row);
  thread.scrollToBottom();
  const frame = { type: "tool", name: cmd.name, args: cmd.args };
  if (!isDraft(key)) frame.conversation_id = key;
  try {
    const reply = await conn.request(frame);
    Object.assign(part, reply.ok ? { state: "ok", result: reply.result } : { state: "error", error: reply.error || "the tool failed" });
  } catch (err) {
    Object.assign(part, { state: "error", error: describeError(err) });
  }
  const msg = store.find(store.current === key ? key : key, row.key) || row;
  store.changed(key, msg);
  saveToolRows();
}

// A direct tool call is not stored by the server: its step is kept in this tab's
// sessionStorage, so that a reload shows it again in its place.
function saveToolRows() {
  if (!tabStore) return;
  const saved = {};
  for (const [key, t] of store.threads) {
    const rows = t.messages.filter((m) => m.role === "local-tool" && m.parts.every((p) => p.state !== "running"));
    if (rows.length) saved[key] = rows.slice(-TOOL_ROWS_KEPT).map(({ key: k, role, parts, status, at }) => ({ key: k, role, parts, status, at, local: true }));
  }
  try {
    tabStore.setItem(TOOLS_KEY, JSON.stringify(saved));
  } catch {
    /* storage full: the steps are shown until the next reload */
  }
}

function restoreToolRows() {
  const saved = readJSON(tabStore, TOOLS_KEY) || {};
  for (const [key, rows] of Object.entries(saved)) {
    if (!Array.isArray(rows)) continue;
    if (isDraft(key)) store.thread(key).loaded = true;
    for (const row of rows) if (row && row.key && Array.isArray(row.parts)) store.addLocal(key, row);
  }
}

// Deletions not sent yet (Undo is still offered), by conversation id: their commit.
const pendingDeletes = new Map();

// ------------------------------------------------------------------ views

const actions = {
  onOpen: (id, messageId) => openConversation(id, messageId),
  onNew: () => newConversation(),
  onLoadMore: () => loadConversations({ more: true }),
  onLoadOlder: () => (store.current && !isDraft(store.current) ? loadHistory(store.current, { older: true }) : Promise.resolve()),
  async onRename(id, title) {
    const old = store.conversations.get(id);
    store.upsertConversation({ id, title });
    try {
      await conn.request({ type: "conversation.update", conversation_id: id, title });
    } catch (err) {
      if (old) store.upsertConversation(old);
      toasts.error(describeError(err, "Rename failed"));
    }
  },
  async onDelete(id, title) {
    if (!(await confirmDialog(`Delete “${title}”? You can undo it for a few seconds.`))) return;
    // Gone from the page at once; sent to the server only when the Undo offer ends.
    const conv = store.conversations.get(id);
    const saved = store.threads.get(id);
    const wasCurrent = store.current === id;
    store.removeConversation(id);
    if (wasCurrent) newConversation();
    const restore = () => {
      if (conv) store.upsertConversation(conv);
      if (saved) store.threads.set(id, saved);
      if (wasCurrent) openConversation(id);
    };
    const commit = () => {
      if (!pendingDeletes.has(id)) return;
      pendingDeletes.delete(id);
      conn.whenReady(() =>
        conn.request({ type: "conversation.delete", conversation_id: id }).catch((err) => {
          if (err.code === "not_found") return; // deleted already (another tab)
          restore();
          toasts.error(describeError(err, "Delete failed"));
        }),
      );
    };
    pendingDeletes.set(id, commit);
    toasts.info("Conversation deleted.", {
      timeoutMs: UNDO_MS,
      action: {
        label: "Undo",
        testid: "undo-delete",
        run: () => {
          pendingDeletes.delete(id);
          restore();
        },
      },
      onClose: commit,
    });
  },
  async onSearch(query) {
    const reply = await conn.request({ type: "tool", name: "search", args: { query, limit: 20 } });
    if (!reply.ok) throw new Error(reply.error || "search failed");
    return reply.result;
  },
  onSubmit(text) {
    const max = store.welcome && store.welcome.limits && store.welcome.limits.max_text_chars;
    if (max && textLength(text) > max) {
      toasts.error(`The message is ${(textLength(text) - max).toLocaleString()} characters over the limit of ${max.toLocaleString()}; shorten it to send.`);
      return false;
    }
    const cmd = parseCommand(text, store.welcome && store.welcome.tools);
    if (cmd && cmd.error) {
      toasts.error(cmd.error);
      return false;
    }
    if (cmd) runTool(cmd);
    else sendText(text);
    return true;
  },
  async onStop() {
    const active = store.activeTurn(store.current);
    if (!active) return;
    try {
      await conn.request({ type: "cancel", turn_id: active.turn_id });
    } catch (err) {
      toasts.error(describeError(err, "Could not stop"));
    }
  },
  async onRegenerate() {
    // The answer is written again in its place (`regenerate`): the question is not sent again.
    const cur = store.current;
    const last = !isDraft(cur) && store.lastAnswer(cur);
    if (!last) return;
    try {
      await conn.request({ type: "regenerate", conversation_id: cur, message_id: last.id });
    } catch (err) {
      toasts.error(describeError(err, "Could not regenerate"));
    }
  },
  async onDecide(callId, decision) {
    store.setDecision(callId, decision);
    try {
      await conn.request({ type: "approve", call_id: callId, decision });
    } catch (err) {
      toasts.error(describeError(err, decision === "allow" ? "Could not allow" : "Could not deny"));
    }
  },
  onRetry(msg) {
    outbox.retry(msg.client_msg_id);
    store.addLocal(store.current, { key: msg.key, status: "pending", failed: null });
  },
  onEdit(msg) {
    outbox.remove(msg.client_msg_id);
    store.removeMessage(store.current, msg.key);
    composer.setText(msg.text || "");
  },
  async onPick(kind, value) {
    const cur = store.current;
    if (!cur || isDraft(cur)) {
      draftPick[kind] = value;
      return;
    }
    const old = store.conversations.get(cur);
    store.upsertConversation({ id: cur, [kind]: value || undefined });
    try {
      await conn.request({ type: "conversation.update", conversation_id: cur, [kind]: value });
    } catch (err) {
      if (old) store.upsertConversation(old);
      composer.refresh();
      toasts.error(describeError(err, `Could not change the ${kind}`));
    }
  },
  selection() {
    const cur = store.current;
    if (!cur || isDraft(cur)) return draftPick;
    const conv = store.conversations.get(cur) || {};
    return { model: conv.model || "", template: conv.template || "" };
  },
};

createSidebar({ store, actions });
createHeader({ store });
const thread = createThread({ store, actions });
const composer = createComposer({ store, actions });

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await fetch("/auth/logout", { method: "POST", credentials: "same-origin" });
  } finally {
    sessionStorage.removeItem(SESSION_KEY);
    location.assign("/login");
  }
});

// ------------------------------------------------------------------ start

restoreOutbox();
restoreToolRows();
const initial = hashId();
if (initial) openConversation(initial);
else {
  const pendingDraft = [...store.threads.keys()].find(isDraft);
  if (pendingDraft) store.setCurrent(pendingDraft);
  else newConversation();
}
status.set("connecting");
conn.start();

// For tests and debugging from the console.
window.chinwag = { store, conn, outbox };

// ------------------------------------------------------------------ helpers

function safeSession() {
  try {
    const s = window.sessionStorage;
    s.setItem("chinwag.probe", "1");
    s.removeItem("chinwag.probe");
    return s;
  } catch {
    return null;
  }
}

function readJSON(storage, key) {
  if (!storage) return null;
  try {
    return JSON.parse(storage.getItem(key) || "null");
  } catch {
    return null;
  }
}
