// The open conversation: messages, streaming answers (rendered at most once per animation
// frame, only the changed Markdown blocks rebuilt), tool steps, notes, regenerate.

import { h, clear, icon, ICONS, copyText } from "../dom.js";
import { MarkdownView } from "../markdown.js";
import { messageText } from "../store.js";
import { renderToolStep } from "./toolsteps.js";

const STICK_PX = 80;

export function createThread({ store, actions }) {
  const scroller = document.getElementById("thread-scroll");
  const box = document.getElementById("messages");
  const emptyState = document.getElementById("empty-state");
  const older = document.getElementById("load-older");
  const views = new Map(); // key -> {el, rev, parts: [{kind, el, md}], meta}
  const dirty = new Set();
  let frame = 0;
  let online = false;
  let shown = null; // thread key being shown

  older.addEventListener("click", async () => {
    const before = scroller.scrollHeight - scroller.scrollTop;
    older.disabled = true;
    try {
      await actions.onLoadOlder();
    } finally {
      older.disabled = false;
    }
    scroller.scrollTop = scroller.scrollHeight - before;
  });

  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICK_PX;
  const toBottom = () => (scroller.scrollTop = scroller.scrollHeight);

  function current() {
    return store.current ? store.threads.get(store.current) : null;
  }

  /** Rebuild the list structure (which rows, in which order); rows update themselves. */
  function sync({ scroll = false } = {}) {
    const stick = scroll || nearBottom();
    const t = current();
    if (shown !== store.current) {
      for (const v of views.values()) v.el.remove();
      views.clear();
      shown = store.current;
    }
    const messages = t ? t.messages : [];
    const keep = new Set(messages.map((m) => m.key));
    for (const [key, v] of views) {
      if (!keep.has(key)) {
        v.el.remove();
        views.delete(key);
      }
    }
    let prev = null;
    const lastAssistant = [...messages].reverse().find((m) => m.role === "assistant");
    for (const msg of messages) {
      let v = views.get(msg.key);
      if (!v) {
        v = { el: h("div", { class: "message", "data-testid": "message", "data-key": msg.key }), rev: -1, parts: [] };
        views.set(msg.key, v);
      }
      v.isLast = msg === lastAssistant;
      const want = prev ? prev.nextSibling : box.firstChild;
      if (v.el !== want) box.insertBefore(v.el, want);
      update(msg, v);
      prev = v.el;
    }
    emptyState.hidden = messages.length > 0 || Boolean(t && t.loading);
    older.hidden = !(t && t.hasMore);
    if (stick) toBottom();
  }

  function update(msg, v, force = false) {
    const stamp = `${msg.rev || 0}|${v.isLast}|${online}|${msg.status}`;
    if (!force && v.stamp === stamp) return;
    v.stamp = stamp;
    const el = v.el;
    el.dataset.role = msg.role === "local-tool" ? "tool" : msg.role;
    el.dataset.status = msg.status || "complete";
    if (msg.id) el.dataset.messageId = msg.id;
    if (msg.role === "user") return renderUser(msg, v);
    return renderAnswer(msg, v);
  }

  function renderUser(msg, v) {
    const meta = [];
    if (msg.status === "failed") {
      meta.push(
        h("span", { class: "send-error" }, `Not sent: ${msg.failed ? msg.failed.message || msg.failed.code : "refused"}`),
        // A message the server refused for its size would be refused again: only Edit.
        !(msg.failed && msg.failed.code === "too_large") &&
          h("button", { type: "button", class: "button subtle", "data-testid": "retry-send", onclick: () => actions.onRetry(msg) }, "Retry"),
        h("button", { type: "button", class: "button subtle", onclick: () => actions.onEdit(msg) }, "Edit"),
      );
    } else if (msg.local) {
      meta.push(h("span", { "data-testid": "send-state" }, online ? "Sending…" : "Queued: sends when you are back online"));
      v.el.dataset.status = online ? "pending" : "queued";
    }
    clear(v.el).append(h("div", { class: "bubble-user" }, msg.text || ""));
    if (meta.length) v.el.append(h("div", { class: "message-meta" }, meta));
  }

  function renderAnswer(msg, v) {
    const el = v.el;
    const parts = msg.parts || [];
    if (!v.body) {
      v.body = h("div", { class: "answer-body" });
      v.tail = h("div", { class: "answer-tail" });
      clear(el).append(v.body, v.tail);
    }
    // Parts: reuse views of the same kind, in place.
    parts.forEach((part, i) => {
      let pv = v.parts[i];
      if (pv && pv.kind !== part.kind) {
        for (const x of v.parts.splice(i)) x.el.remove();
        pv = null;
      }
      if (!pv) {
        if (part.kind === "text") {
          const textEl = h("div", { class: "message-text", "data-testid": "message-text" });
          pv = { kind: "text", el: textEl, md: new MarkdownView(textEl) };
        } else {
          pv = { kind: "tool", el: null };
        }
        v.parts[i] = pv;
      }
      if (part.kind === "text") pv.md.update(part.text);
      else pv.el = renderToolStep(part, pv.el, { onDecide: actions.onDecide });
      if (pv.el.parentNode !== v.body || v.body.children[i] !== pv.el) v.body.insertBefore(pv.el, v.body.children[i] || null);
    });
    for (const x of v.parts.splice(parts.length)) x.el.remove();
    el.setAttribute("aria-busy", msg.status === "streaming" ? "true" : "false");

    const tail = [];
    if (msg.status === "streaming" && !parts.some((p) => p.kind === "text" && p.text)) {
      tail.push(h("span", { class: "thinking", "data-testid": "thinking" }, "Thinking", h("span", { class: "cursor", "aria-hidden": "true" })));
    }
    if (msg.status === "cancelled") tail.push(h("div", { class: "note", "data-testid": "message-note" }, "Stopped."));
    if (msg.status === "incomplete") tail.push(h("div", { class: "note", "data-testid": "message-note" }, "This answer was interrupted."));
    if (msg.status === "failed") {
      // From history the reason is not stored: say only that it failed.
      const why = msg.error && msg.error.message ? `: ${msg.error.message}` : ".";
      tail.push(h("div", { class: "note failed", "data-testid": "message-note" }, `The answer failed${why}`));
    }
    const hasText = parts.some((p) => p.kind === "text" && p.text.trim());
    if (msg.status !== "streaming" && msg.role === "assistant" && (hasText || v.isLast)) {
      const bits = [];
      if (msg.model) {
        const by = msg.fallback_from ? `answered by ${msg.model} (fallback from ${msg.fallback_from})` : msg.model;
        bits.push(h("span", { "data-testid": "message-model" }, by));
      }
      if (hasText) bits.push(
        h("button", {
          type: "button", class: "icon-button", "aria-label": "Copy answer", "data-testid": "copy-answer",
          onclick: async (e) => {
            const b = e.currentTarget;
            const ok = await copyText(messageText(msg));
            b.setAttribute("aria-label", ok ? "Copied" : "Copy failed");
            setTimeout(() => b.setAttribute("aria-label", "Copy answer"), 1500);
          },
        }, icon(ICONS.copy, { size: 15 })),
      );
      if (v.isLast) {
        bits.push(h("button", { type: "button", class: "icon-button", "aria-label": "Regenerate the answer", "data-testid": "regenerate", onclick: () => actions.onRegenerate() }, icon(ICONS.refresh, { size: 15 })));
      }
      tail.push(h("div", { class: "answer-meta" }, bits));
    }
    clear(v.tail).append(...tail);
  }

  function flushDirty() {
    frame = 0;
    const stick = nearBottom();
    const t = current();
    for (const key of dirty) {
      const v = views.get(key);
      const msg = t && t.messages.find((m) => m.key === key);
      if (v && msg) update(msg, v);
    }
    dirty.clear();
    if (stick) toBottom();
  }

  store.on("message", ({ thread, key }) => {
    if (thread !== store.current) return;
    dirty.add(key);
    if (!frame) frame = requestAnimationFrame(flushDirty);
  });
  store.on("thread", (key) => {
    if (key === store.current) sync();
  });
  store.on("current", () => sync({ scroll: true }));

  return {
    sync,
    setOnline(value) {
      if (online === value) return;
      online = value;
      sync();
    },
    /** Scroll a message into view and highlight it briefly (search hits). */
    reveal(messageId) {
      const el = box.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
      if (!el) return false;
      el.scrollIntoView({ block: "center" });
      el.classList.add("flash");
      setTimeout(() => el.classList.remove("flash"), 1600);
      return true;
    },
    scrollToBottom: toBottom,
  };
}
