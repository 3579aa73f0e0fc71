// The conversation sidebar: list (newest first, paged), new, rename, delete, search.
// On narrow screens it is a drawer opened by the menu button.

import { h, clear, icon, ICONS, shortTime } from "../dom.js";

export function createSidebar({ store, actions }) {
  const app = document.getElementById("app");
  const list = document.getElementById("conversation-list");
  const empty = document.getElementById("conversation-empty");
  const more = document.getElementById("load-more");
  const nav = list.closest("nav");
  const searchInput = document.getElementById("search-input");
  const results = document.getElementById("search-results");
  const hitList = document.getElementById("hit-list");
  const summary = document.getElementById("search-summary");
  const menuButton = document.getElementById("menu-button");
  const backdrop = document.getElementById("backdrop");
  let renaming = null;
  let searchSeq = 0;
  let searchTimer = 0;

  menuButton.append(icon(ICONS.menu));
  document.getElementById("new-conversation").addEventListener("click", () => {
    closeDrawer();
    actions.onNew();
  });
  more.addEventListener("click", () => actions.onLoadMore());

  // ---------------------------------------------------------------- drawer
  function openDrawer() {
    app.dataset.drawer = "open";
    backdrop.hidden = false;
    menuButton.setAttribute("aria-expanded", "true");
    const target = list.querySelector("[aria-current='true'] a") || searchInput;
    target.focus();
  }
  function closeDrawer() {
    if (app.dataset.drawer !== "open") return;
    delete app.dataset.drawer;
    backdrop.hidden = true;
    menuButton.setAttribute("aria-expanded", "false");
  }
  menuButton.addEventListener("click", () => (app.dataset.drawer === "open" ? closeDrawer() : openDrawer()));
  backdrop.addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && app.dataset.drawer === "open") {
      closeDrawer();
      menuButton.focus();
    }
  });

  // ---------------------------------------------------------------- list
  function render() {
    if (renaming) return;
    const convs = store.sortedConversations();
    clear(list);
    for (const conv of convs) list.append(item(conv));
    empty.hidden = convs.length > 0;
    more.hidden = !store.hasMoreConversations;
  }

  function item(conv) {
    const current = store.current === conv.id;
    const title = conv.title || "Untitled";
    return h(
      "li",
      { class: "conversation-item", "data-testid": "conversation-item", "data-id": conv.id, "aria-current": current ? "true" : "false" },
      h("a", {
        class: "conversation-link",
        href: "#" + encodeURIComponent(conv.id),
        title: `${title}${conv.updated_at ? " · " + shortTime(conv.updated_at) : ""}`,
        onclick: (e) => {
          e.preventDefault();
          closeDrawer();
          actions.onOpen(conv.id);
        },
      }, title),
      h(
        "span",
        { class: "conversation-actions" },
        h("button", { type: "button", class: "icon-button", "aria-label": `Rename “${title}”`, "data-testid": "rename-conversation", onclick: () => startRename(conv) }, icon(ICONS.pencil, { size: 15 })),
        h("button", { type: "button", class: "icon-button", "aria-label": `Delete “${title}”`, "data-testid": "delete-conversation", onclick: () => actions.onDelete(conv.id, title) }, icon(ICONS.trash, { size: 15 })),
      ),
    );
  }

  function startRename(conv) {
    const li = list.querySelector(`[data-id="${CSS.escape(conv.id)}"]`);
    if (!li) return;
    renaming = conv.id;
    const input = h("input", { class: "rename-input", "aria-label": "New title", "data-testid": "rename-input", value: conv.title || "" });
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      renaming = null;
      const title = input.value.trim();
      if (save && title && title !== conv.title) actions.onRename(conv.id, title);
      render();
      const link = list.querySelector(`[data-id="${CSS.escape(conv.id)}"] a`);
      if (link) link.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        finish(true);
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
    clear(li).append(input);
    input.focus();
    input.select();
  }

  // ---------------------------------------------------------------- search
  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    const query = searchInput.value.trim();
    if (!query) {
      searchSeq++;
      showResults(false);
      return;
    }
    searchTimer = setTimeout(() => runSearch(query), 250);
  });
  searchInput.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && searchInput.value) {
      e.stopPropagation();
      searchInput.value = "";
      searchSeq++;
      showResults(false);
    } else if (e.key === "ArrowDown") {
      const first = hitList.querySelector("a");
      if (first) {
        e.preventDefault();
        first.focus();
      }
    }
  });

  function showResults(on) {
    results.hidden = !on;
    nav.hidden = on;
  }

  async function runSearch(query) {
    const mine = ++searchSeq;
    showResults(true);
    summary.textContent = "Searching…";
    clear(hitList);
    let hits;
    try {
      hits = await actions.onSearch(query);
    } catch (err) {
      if (mine === searchSeq) summary.textContent = `Search failed: ${err.message || err.code}`;
      return;
    }
    if (mine !== searchSeq) return;
    hits = Array.isArray(hits) ? hits : [];
    summary.textContent = hits.length ? `${hits.length} result${hits.length === 1 ? "" : "s"}` : "Nothing found.";
    for (const hit of hits) hitList.append(hitItem(hit));
  }

  function hitItem(hit) {
    const title = hit.conversation_title || "Untitled";
    return h(
      "li",
      { class: "search-hit", "data-testid": "search-hit", "data-conversation-id": hit.conversation_id, "data-message-id": hit.message_id || "", "data-role": hit.role || "" },
      h("a", {
        href: "#" + encodeURIComponent(hit.conversation_id),
        onclick: (e) => {
          e.preventDefault();
          closeDrawer();
          actions.onOpen(hit.conversation_id, hit.message_id);
        },
      },
      h("span", { class: "hit-title" }, title),
      // Who wrote the match, and when: a question and its (echoed) answer read apart.
      h(
        "span",
        { class: "hit-meta", "data-testid": "hit-meta" },
        h("span", { class: "hit-role", "data-role": hit.role || "" }, hit.role === "user" ? "You" : hit.role === "assistant" ? "Assistant" : hit.role || ""),
        hit.created_at ? h("time", { datetime: hit.created_at, title: new Date(hit.created_at).toLocaleString() }, shortTime(hit.created_at)) : null,
      ),
      h("span", { class: "hit-snippet" }, snippetNodes(hit.snippet || ""))),
    );
  }

  store.on("conversations", render);
  store.on("current", render);
  render();

  return { render, closeDrawer, focusSearch: () => searchInput.focus() };
}

/** A search snippet as nodes: only the exact <mark>…</mark> markers become elements. */
export function snippetNodes(snippet) {
  const out = [];
  const re = /<mark>([\s\S]*?)<\/mark>/g;
  let last = 0;
  let m;
  while ((m = re.exec(snippet))) {
    if (m.index > last) out.push(document.createTextNode(snippet.slice(last, m.index)));
    const mark = document.createElement("mark");
    mark.textContent = m[1];
    out.push(mark);
    last = m.index + m[0].length;
  }
  if (last < snippet.length) out.push(document.createTextNode(snippet.slice(last)));
  return out;
}
