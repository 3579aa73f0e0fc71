// Non-blocking notices (errors from the server, failed actions). Never modal.

import { h, icon, ICONS } from "../dom.js";

const MAX = 4;

export function createToasts(container) {
  const recent = new Map(); // text -> time, to fold repeats

  /**
   * `action: {label, testid, run}` adds a button (e.g. Undo) that runs once and closes the
   * notice; `onClose` runs when the notice goes without its action (timeout, dismiss).
   */
  function show(text, { kind = "info", timeoutMs = 6000, action = null, onClose = null } = {}) {
    const now = Date.now();
    if (!action && recent.has(text) && now - recent.get(text) < 3000) return;
    recent.set(text, now);
    let done = false;
    const finish = (acted) => {
      if (done) return;
      done = true;
      toast.remove();
      if (acted) action.run();
      else if (onClose) onClose();
    };
    const close = () => finish(false);
    const toast = h(
      "div",
      { class: "toast", "data-kind": kind, "data-testid": "toast", role: kind === "error" ? "alert" : "status" },
      h("span", { class: "toast-text" }, text),
      action && h("button", { type: "button", class: "button subtle toast-action", "data-testid": action.testid || "toast-action", onclick: () => finish(true) }, action.label),
      h("button", { type: "button", class: "icon-button", "aria-label": "Dismiss", onclick: close }, icon(ICONS.close, { size: 14 })),
    );
    container.append(toast);
    while (container.children.length > MAX) {
      const oldest = container.firstElementChild;
      oldest.dispatchEvent(new Event("toast-evict"));
      oldest.remove();
    }
    toast.addEventListener("toast-evict", close);
    if (timeoutMs) setTimeout(close, timeoutMs);
    return { close };
  }

  return {
    info: (text, opts) => show(text, { kind: "info", ...opts }),
    error: (text, opts) => show(text, { kind: "error", timeoutMs: 8000, ...opts }),
  };
}

/** A readable sentence for an `error` frame or a ConnectionError. */
export function describeError(err, action) {
  const what = action ? `${action}: ` : "";
  const code = err && err.code;
  const message = (err && err.message) || "something went wrong";
  switch (code) {
    case "rate_limited":
      return `${what}slow down a little${err.retry_after ? `, try again in ${Math.ceil(err.retry_after)} s` : ""}.`;
    case "disconnected":
      return `${what}the connection dropped; try again when it is back.`;
    case "timeout":
      return `${what}the server did not answer in time.`;
    case "not_found":
      return `${what}not found.`;
    case "forbidden":
      return `${what}not allowed.`;
    case "bad_request": {
      // Name the field that is wrong: "limit: Expected `int` <= 50", not just the rule.
      const path = err.details && typeof err.details.path === "string" ? err.details.path : "";
      const field = path.replace(/^\$(\.args)?\.?/, "");
      return field && !message.includes(`\`${field}\``) ? `${what}${field}: ${message}` : `${what}${message}`;
    }
    default:
      return `${what}${message}`;
  }
}
