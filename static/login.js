// The login page: POST /auth/login with {username, password}; 200 sets the session
// cookie, then the chat page opens. 401 means a wrong name or password.

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
const submit = document.getElementById("login-submit");
const username = document.getElementById("username");

username.focus();

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const data = new FormData(form);
  const body = { username: String(data.get("username") || "").trim(), password: String(data.get("password") || "") };
  if (!body.username || !body.password) {
    error.textContent = "Enter your name and password.";
    return;
  }
  error.textContent = "";
  submit.disabled = true;
  submit.textContent = "Logging in…";
  try {
    const res = await fetch("/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    if (res.ok) {
      location.assign("/");
      return;
    }
    if (res.status === 401) error.textContent = "Wrong name or password.";
    else if (res.status === 429) error.textContent = "Too many attempts; wait a moment and try again.";
    else error.textContent = `Could not log in (HTTP ${res.status}).`;
  } catch {
    error.textContent = "The server cannot be reached. Check the connection and try again.";
  } finally {
    submit.disabled = false;
    submit.textContent = "Log in";
  }
  document.getElementById("password").select();
});
