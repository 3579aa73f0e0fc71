// A tool call shown as a collapsible step: name, arguments, result or error, and the
// Allow / Deny prompt for tools that need the user's approval.

import { h, clear } from "../dom.js";
import { pretty, renderResult } from "./results.js";

const STATE_LABEL = {
  running: "running…",
  awaiting: "needs your approval",
  ok: "done",
  error: "failed",
  denied: "denied",
  stopped: "stopped",
};

export { pretty };

/**
 * Create or update (in place, keeping it open or closed) the element of one tool step.
 * `onDecide(call_id, "allow" | "deny")` answers an approval prompt.
 */
export function renderToolStep(part, el, { onDecide } = {}) {
  const signature = JSON.stringify([part.state, part.decision, part.result, part.error, part.args, part.name]);
  if (el && el._signature === signature) return el;
  if (!el) {
    el = h("details", { class: "tool-step", "data-testid": "tool-step" });
    if (part.state === "awaiting") el.open = true;
  }
  el._signature = signature;
  el.dataset.state = part.state || "ok";
  el.dataset.callId = part.call_id || "";
  el.dataset.name = part.name || "";
  if (part.state === "awaiting") el.open = true;

  const body = [];
  if (part.args !== undefined) body.push(h("div", { class: "tool-label" }, "Arguments"), h("pre", { "data-testid": "tool-args" }, pretty(part.args)));
  if (part.error) body.push(h("div", { class: "tool-label" }, "Error"), h("pre", { "data-testid": "tool-error" }, pretty(part.error)));
  else if (part.result !== undefined) body.push(h("div", { class: "tool-label" }, "Result"), h("div", { class: "tool-result", "data-testid": "tool-result" }, renderResult(part.name, part.result)));

  clear(el).append(
    h("summary", {}, h("span", { class: "tool-name" }, part.name || "tool"), h("span", { class: "tool-state" }, STATE_LABEL[part.state] || part.state || "")),
    h("div", { class: "tool-body" }, body),
  );
  if (part.state === "awaiting" && part.needs_approval && !part.decision) {
    const decide = (decision) => (e) => {
      e.preventDefault();
      for (const b of el.querySelectorAll(".approval button")) b.disabled = true;
      onDecide && onDecide(part.call_id, decision);
    };
    el.append(
      h(
        "div",
        { class: "approval", role: "group", "aria-label": `Approve ${part.name}` },
        h("span", { class: "approval-text" }, `Run ${part.name} with these arguments?`),
        h("button", { type: "button", class: "button subtle", "data-testid": "approve-deny", onclick: decide("deny") }, "Deny"),
        h("button", { type: "button", class: "button primary", "data-testid": "approve-allow", onclick: decide("allow") }, "Allow"),
      ),
    );
  }
  return el;
}
