// The top bar: conversation title and the export menu of the open conversation.

export function createHeader({ store }) {
  const title = document.getElementById("conversation-title");
  const exportMenu = document.getElementById("export-menu");
  const links = exportMenu.querySelectorAll("a[data-format]");

  function render() {
    const id = store.current;
    const conv = id ? store.conversation(id) : null;
    const isDraft = !id || id.startsWith("draft:");
    title.textContent = conv ? conv.title || "Untitled" : isDraft ? "New conversation" : "Conversation";
    document.title = conv && conv.title ? `${conv.title} · chinwag` : "chinwag";
    exportMenu.hidden = isDraft;
    if (isDraft) exportMenu.open = false;
    for (const a of links) {
      const format = a.dataset.format;
      if (isDraft) a.removeAttribute("href");
      else a.href = `/api/conversations/${encodeURIComponent(id)}/export?format=${format}`;
    }
  }

  // Close the menu after a choice, on Escape, and on a click elsewhere.
  exportMenu.addEventListener("click", (e) => {
    if (e.target.closest("a")) setTimeout(() => (exportMenu.open = false), 0);
  });
  exportMenu.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && exportMenu.open) {
      e.stopPropagation();
      exportMenu.open = false;
      exportMenu.querySelector("summary").focus();
    }
  });
  document.addEventListener("click", (e) => {
    if (exportMenu.open && !exportMenu.contains(e.target)) exportMenu.open = false;
  });

  store.on("current", render);
  store.on("conversations", render);
  render();
  return { render };
}
