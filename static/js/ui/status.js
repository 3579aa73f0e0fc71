// The connection indicator: connected / connecting / reconnecting / offline.

const LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export function createStatus(el, composer) {
  const label = el.querySelector(".connection-label");
  return {
    set(state, detail) {
      el.dataset.state = state;
      composer.dataset.state = state;
      const text = detail || LABELS[state] || state;
      label.textContent = text;
      el.title = text;
      el.setAttribute("aria-label", `Connection: ${text}`);
    },
  };
}
