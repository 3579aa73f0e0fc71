// A small confirm dialog on <dialog>, instead of the browser's blocking confirm().

export function createConfirm(dialog) {
  const text = dialog.querySelector("#confirm-text");
  const ok = dialog.querySelector("#confirm-ok");
  const cancel = dialog.querySelector("[data-testid='confirm-cancel']");
  return function confirm(message, { okLabel = "Delete" } = {}) {
    if (typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(message));
    text.textContent = message;
    ok.textContent = okLabel;
    dialog.returnValue = "";
    dialog.showModal();
    // Cancel has the focus: Enter (or a stray key press) never confirms a deletion.
    cancel.focus();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    });
  };
}
