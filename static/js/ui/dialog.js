// A small confirm dialog on <dialog>, instead of the browser's blocking confirm().

export function createConfirm(dialog) {
  const text = dialog.querySelector("#confirm-text");
  const ok = dialog.querySelector("#confirm-ok");
  return function confirm(message, { okLabel = "Delete" } = {}) {
    if (typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(message));
    text.textContent = message;
    ok.textContent = okLabel;
    dialog.returnValue = "";
    dialog.showModal();
    ok.focus();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    });
  };
}
