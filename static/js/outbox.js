// Messages the server has not acknowledged yet, kept in localStorage with their
// `client_msg_id` so that nothing typed is lost: not on a network drop, not on a reload,
// not when the tab is closed (another tab of the page adopts the orphaned messages).
// Every (re)send uses the same id, so the server stores each message once.

const KEY = "chinwag.outbox.v1";
const TOUCH_MS = 5000; // an owning tab refreshes its items this often
const ORPHAN_MS = 20000; // items not refreshed for this long are adopted
const RETRYABLE = new Set(["internal", "timeout", "model_unavailable", "disconnected", "conflict"]);
const MAX_ATTEMPTS = 6;

export function newId(prefix = "m") {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + "_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Outbox {
  /**
   * @param {object} o
   * @param {string} o.tabId  this tab's id (kept in sessionStorage, so a reload keeps it)
   * @param {(item, ack) => void} o.onAck
   * @param {(item, error) => void} o.onFail    the server refused the message for good
   * @param {() => void} o.onChange             the queue changed (for "n queued" displays)
   */
  constructor({ tabId, onAck, onFail, onChange, storage = safeStorage() }) {
    this.tabId = tabId;
    this.onAck = onAck || (() => {});
    this.onFail = onFail || (() => {});
    this.onChange = onChange || (() => {});
    this.storage = storage;
    this.memory = [];
    this.inflight = new Map(); // client_msg_id -> connection epoch it was sent on
    this.holdUntil = 0;
    this.conn = null;
    setInterval(() => this.touch(), TOUCH_MS);
    window.addEventListener("storage", (e) => {
      if (e.key === KEY) this.onChange();
    });
  }

  read() {
    if (!this.storage) return this.memory;
    try {
      const items = JSON.parse(this.storage.getItem(KEY) || "[]");
      return Array.isArray(items) ? items : [];
    } catch {
      return [];
    }
  }

  write(items) {
    this.memory = items;
    if (this.storage) {
      try {
        if (items.length) this.storage.setItem(KEY, JSON.stringify(items));
        else this.storage.removeItem(KEY);
      } catch {
        /* storage full or blocked: the in-memory copy still gets sent */
      }
    }
    this.onChange();
  }

  modify(fn) {
    const items = this.read();
    const out = fn(items) || items;
    this.write(out);
    return out;
  }

  /** Items this tab is responsible for, adopting those whose tab went away. */
  mine() {
    const now = Date.now();
    let adopted = false;
    const items = this.read();
    for (const item of items) {
      if (item.owner !== this.tabId && now - (item.touched || 0) > ORPHAN_MS) {
        item.owner = this.tabId;
        item.touched = now;
        adopted = true;
      }
    }
    if (adopted) this.write(items);
    return items.filter((item) => item.owner === this.tabId);
  }

  touch() {
    const now = Date.now();
    const items = this.read();
    if (!items.length) return;
    if (items.some((i) => i.owner === this.tabId)) {
      for (const item of items) if (item.owner === this.tabId) item.touched = now;
      this.write(items);
    }
    this.flush(); // also adopts (and sends) the items of a tab that went away
  }

  /** The tab is going away: let another tab adopt its items at once, not after ORPHAN_MS.
   * (A reload keeps the tab id, so the reloaded page still owns them if no tab took them.) */
  release() {
    const items = this.read();
    if (!items.some((i) => i.owner === this.tabId)) return;
    for (const item of items) if (item.owner === this.tabId) item.touched = 0;
    this.write(items);
  }

  add(item) {
    const full = { attempts: 0, ...item, owner: this.tabId, touched: Date.now(), created: Date.now() };
    this.modify((items) => {
      items.push(full);
    });
    this.flush();
    return full;
  }

  get(clientMsgId) {
    return this.read().find((i) => i.client_msg_id === clientMsgId) || null;
  }

  remove(clientMsgId) {
    this.inflight.delete(clientMsgId);
    this.modify((items) => items.filter((i) => i.client_msg_id !== clientMsgId));
  }

  update(clientMsgId, patch) {
    this.modify((items) => {
      for (const item of items) if (item.client_msg_id === clientMsgId) Object.assign(item, patch);
    });
  }

  /** A new conversation got its id: the messages queued behind its first one follow it. */
  bindDraft(draftKey, conversationId) {
    this.modify((items) => {
      for (const item of items) {
        if (item.draft_key === draftKey && !item.conversation_id) item.conversation_id = conversationId;
      }
    });
  }

  attach(conn) {
    this.conn = conn;
  }

  /** Send everything sendable that has not been sent on the current connection. */
  flush() {
    const conn = this.conn;
    if (!conn || !conn.ready) return;
    const wait = this.holdUntil - Date.now();
    if (wait > 0) {
      clearTimeout(this.holdTimer);
      this.holdTimer = setTimeout(() => this.flush(), wait);
      return;
    }
    const firstOfDraft = new Map();
    for (const item of this.mine()) {
      if (item.failed) continue;
      if (!item.conversation_id && item.draft_key) {
        // Only the first message of a new conversation may go before it has an id.
        if (firstOfDraft.has(item.draft_key)) continue;
        firstOfDraft.set(item.draft_key, item.client_msg_id);
      }
      if (this.inflight.get(item.client_msg_id) === conn.epoch) continue;
      this.sendOne(conn, item);
    }
  }

  sendOne(conn, item) {
    const epoch = conn.epoch;
    this.inflight.set(item.client_msg_id, epoch);
    const frame = { type: "send", client_msg_id: item.client_msg_id, text: item.text };
    if (item.conversation_id) frame.conversation_id = item.conversation_id;
    else {
      if (item.model) frame.model = item.model;
      if (item.template) frame.template = item.template;
    }
    if (item.variables) frame.variables = item.variables;
    conn
      .request(frame)
      .then((ack) => {
        this.remove(item.client_msg_id);
        this.onAck(item, ack);
        this.flush(); // messages queued behind a new conversation can go now
      })
      .catch((err) => {
        if (this.inflight.get(item.client_msg_id) === epoch) this.inflight.delete(item.client_msg_id);
        if (err.code === "disconnected") return; // resent after the next welcome
        if (err.code === "rate_limited") {
          this.holdUntil = Date.now() + 1000 * (Number(err.retry_after) || 5);
          this.flush();
          return;
        }
        const attempts = (item.attempts || 0) + 1;
        if (RETRYABLE.has(err.code) && attempts < MAX_ATTEMPTS) {
          this.update(item.client_msg_id, { attempts });
          setTimeout(() => this.flush(), Math.min(30000, 1000 * 2 ** attempts));
          return;
        }
        const failed = { code: err.code, message: err.message };
        this.update(item.client_msg_id, { failed });
        this.onFail({ ...item, failed }, err);
      });
  }

  /** Put a failed message back in the queue (same id: the server never stored it). */
  retry(clientMsgId) {
    this.update(clientMsgId, { failed: null, attempts: 0, owner: this.tabId, touched: Date.now() });
    this.flush();
  }
}

function safeStorage() {
  try {
    const s = window.localStorage;
    const probe = "chinwag.probe";
    s.setItem(probe, "1");
    s.removeItem(probe);
    return s;
  } catch {
    return null;
  }
}
