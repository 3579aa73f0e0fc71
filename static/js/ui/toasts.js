// Non-blocking notices (errors from the server, failed actions). Never modal.

import { h, icon, ICONS } from "../dom.js";

const MAX = 4;

export function createToasts(container) {
  const recent = new Map(); // text -> time, to fold repeats

  function show(text, { kind = "info", timeoutMs = 6000 } = {}) {
    const now = Date.now();
    if (recent.has(text) && now - recent.get(text) < 3000) return;
    recent.set(text, now);
    const close = () => toast.remove();
    const toast = h(
      "div",
      { class: "toast", "data-kind": kind, "data-testid": "toast", role: kind === "error" ? "alert" : "status" },
      h("span", { class: "toast-text" }, text),
      h("button", { type: "button", class: "icon-button", "aria-label": "Dismiss", onclick: close }, icon(ICONS.close, { size: 14 })),
    );
    container.append(toast);
    while (container.children.length > MAX) container.firstElementChild.remove();
    if (timeoutMs) setTimeout(close, timeoutMs);
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
    default:
      return `${what}${message}`;
  }
}
