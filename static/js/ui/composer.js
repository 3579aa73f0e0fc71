// The message box: Enter sends, Shift+Enter is a new line, Escape stops the running answer;
// it grows with its text, stays typeable offline (messages queue), offers `/tool` completion,
// and carries the model and template pickers.

import { h, clear, icon, ICONS } from "../dom.js";

const DRAFT_KEY = "chinwag.composer.draft";
// The counter shows from this share of `welcome.limits.max_text_chars` on.
const COUNT_FROM = 0.9;

/** Length as the server counts it: code points, not UTF-16 units. */
export function textLength(text) {
  const pairs = text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g);
  return text.length - (pairs ? pairs.length : 0);
}

export function createComposer({ store, actions }) {
  const form = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const send = document.getElementById("send-button");
  const stop = document.getElementById("stop-button");
  const modelPicker = document.getElementById("model-picker");
  const templatePicker = document.getElementById("template-picker");
  const menu = document.getElementById("slash-menu");
  const counter = document.getElementById("char-count");
  let menuItems = [];
  let menuIndex = 0;

  send.append(icon(ICONS.send));
  stop.append(icon(ICONS.stop, { size: 16 }));

  try {
    input.value = sessionStorage.getItem(DRAFT_KEY) || "";
  } catch {
    /* no storage */
  }

  function grow() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
    send.disabled = !input.value.trim() || count();
    try {
      sessionStorage.setItem(DRAFT_KEY, input.value);
    } catch {
      /* no storage */
    }
  }

  /** Show the length near the limit; true when the text is over it (it cannot be sent). */
  function count() {
    const max = store.welcome && store.welcome.limits && store.welcome.limits.max_text_chars;
    const n = max ? textLength(input.value) : 0;
    const over = Boolean(max) && n > max;
    counter.hidden = !max || n < max * COUNT_FROM;
    if (!counter.hidden) {
      counter.textContent = over ? `${(n - max).toLocaleString()} over the limit of ${max.toLocaleString()}` : `${n.toLocaleString()} / ${max.toLocaleString()}`;
    }
    counter.dataset.over = over ? "true" : "false";
    return over;
  }

  function submit() {
    const text = input.value;
    if (!text.trim()) return;
    closeMenu();
    if (actions.onSubmit(text) !== false) {
      input.value = "";
      grow();
    }
    input.focus();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
  input.addEventListener("input", () => {
    grow();
    updateMenu();
  });
  input.addEventListener("keydown", (e) => {
    if (!menu.hidden && menuItems.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        menuIndex = (menuIndex + (e.key === "ArrowDown" ? 1 : -1) + menuItems.length) % menuItems.length;
        paintMenu();
        return;
      }
      // Enter on a complete command name runs it; on a prefix it completes the name.
      const typed = input.value.slice(1);
      const exact = menuItems[menuIndex].name === typed;
      if (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey && !exact && !input.value.includes(" "))) {
        e.preventDefault();
        complete(menuItems[menuIndex]);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        closeMenu();
        return;
      }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    }
  });
  stop.addEventListener("click", () => actions.onStop());
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || e.defaultPrevented) return;
    if (document.querySelector("dialog[open]")) return;
    if (document.getElementById("app").dataset.drawer === "open") return;
    if (store.activeTurn(store.current)) {
      e.preventDefault();
      actions.onStop();
    }
  });

  // ---------------------------------------------------------------- slash commands
  function updateMenu() {
    const m = input.value.match(/^\/([\w.-]*)$/);
    const tools = (store.welcome && store.welcome.tools) || [];
    if (!m || !tools.length) return closeMenu();
    menuItems = tools.filter((t) => t && t.name && t.name.startsWith(m[1]));
    if (!menuItems.length) return closeMenu();
    menuIndex = Math.min(menuIndex, menuItems.length - 1);
    menu.hidden = false;
    paintMenu();
  }

  function paintMenu() {
    clear(menu);
    menuItems.forEach((tool, i) => {
      const id = `slash-${i}`;
      menu.append(
        h("button", {
          type: "button", id, class: "slash-option", role: "option", tabindex: "-1",
          "aria-selected": i === menuIndex ? "true" : "false", "data-testid": "slash-option",
          onmousedown: (e) => e.preventDefault(),
          onclick: () => complete(tool),
        },
        h("span", { class: "slash-name" }, "/" + tool.name),
        h("span", { class: "slash-desc" }, firstLine(tool.description))),
      );
    });
  }

  function complete(tool) {
    input.value = `/${tool.name} `;
    closeMenu();
    grow();
    input.focus();
  }

  function closeMenu() {
    menu.hidden = true;
    menuItems = [];
    menuIndex = 0;
  }
  input.setAttribute("aria-controls", "slash-menu");
  input.addEventListener("blur", () => setTimeout(closeMenu, 150));

  // ---------------------------------------------------------------- pickers
  function fill(select, values, label) {
    const keep = select.value;
    clear(select).append(h("option", { value: "" }, `Default ${label}`), ...values.map((v) => h("option", { value: v }, v)));
    select.value = values.includes(keep) ? keep : "";
  }
  store.on("welcome", (w) => {
    grow();
    fill(modelPicker, w.models || [], "model");
    fill(templatePicker, w.templates || [], "template");
    modelPicker.hidden = !(w.models || []).length;
    templatePicker.hidden = !(w.templates || []).length;
    refresh();
  });
  modelPicker.addEventListener("change", () => actions.onPick("model", modelPicker.value));
  templatePicker.addEventListener("change", () => actions.onPick("template", templatePicker.value));

  function choose(select, value) {
    const v = value || "";
    if (v && ![...select.options].some((o) => o.value === v)) select.append(h("option", { value: v }, v));
    select.value = v;
  }

  /** Reflect the current conversation: its model and template, and whether a turn runs. */
  function refresh() {
    const sel = actions.selection();
    choose(modelPicker, sel.model);
    choose(templatePicker, sel.template);
    const running = Boolean(store.activeTurn(store.current));
    stop.hidden = !running;
    form.dataset.running = running ? "true" : "false";
  }
  for (const topic of ["current", "thread", "message", "conversations"]) store.on(topic, refresh);

  grow();
  return {
    focus: () => input.focus(),
    setText(text) {
      input.value = text;
      grow();
      input.focus();
    },
    refresh,
  };
}

function firstLine(text) {
  return String(text || "").split("\n")[0].slice(0, 120);
}
