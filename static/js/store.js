// Client state: conversations, the messages of each thread, and the turns being streamed.
// Plain objects and methods, no DOM: the UI subscribes with `on(topic, fn)`.
//
// Topics: "conversations", "thread" (a thread's message list changed; detail = thread key),
// "message" (one message changed; detail = {thread, key}), "current", "welcome".
//
// A thread is keyed by its conversation id, or by a draft key ("draft:…") for a new
// conversation whose first message has not been acknowledged yet. A message view has a
// stable `key`: "u:<client_msg_id>" for user messages sent with one (so the local copy and
// the stored one are the same row), "m:<message id>" otherwise, "l:<id>" for local notes.

export class Store {
  constructor() {
    this.conversations = new Map();
    // Conversations known from `history` but not (yet) in the listed pages: their title for
    // the top bar. Kept apart so that the sidebar's paging cursor stays right.
    this.known = new Map();
    this.hasMoreConversations = false;
    this.threads = new Map();
    this.turns = new Map(); // turn_id -> {conversation_id, key, status}
    this.current = null;
    this.welcome = null;
    this.listeners = new Map();
  }

  on(topic, fn) {
    if (!this.listeners.has(topic)) this.listeners.set(topic, new Set());
    this.listeners.get(topic).add(fn);
    return () => this.listeners.get(topic).delete(fn);
  }

  emit(topic, detail) {
    for (const fn of this.listeners.get(topic) || []) fn(detail);
  }

  setWelcome(welcome) {
    this.welcome = welcome;
    this.emit("welcome", welcome);
  }

  tool(name) {
    const tools = (this.welcome && this.welcome.tools) || [];
    return tools.find((t) => t && t.name === name) || null;
  }

  // ------------------------------------------------------------ conversations

  sortedConversations() {
    return [...this.conversations.values()].sort((a, b) => time(b.updated_at) - time(a.updated_at));
  }

  setConversations(list, hasMore, { append = false } = {}) {
    if (!append) this.conversations = new Map();
    for (const c of list) this.conversations.set(c.id, c);
    this.hasMoreConversations = Boolean(hasMore);
    this.emit("conversations");
  }

  /** The conversation as best known: listed, or learnt from its history. */
  conversation(id) {
    return this.conversations.get(id) || this.known.get(id) || null;
  }

  /** A `history` reply named its conversation. */
  learnConversation(conv) {
    if (!conv || !conv.id) return;
    if (this.conversations.has(conv.id)) return;
    this.known.set(conv.id, conv);
    this.emit("conversations");
  }

  upsertConversation(conv) {
    const old = this.conversations.get(conv.id) || {};
    this.conversations.set(conv.id, { ...old, ...conv });
    this.emit("conversations");
  }

  removeConversation(id) {
    this.conversations.delete(id);
    this.known.delete(id);
    this.threads.delete(id);
    this.emit("conversations");
    if (this.current === id) this.setCurrent(null);
  }

  // ------------------------------------------------------------ threads

  thread(key) {
    if (!this.threads.has(key)) {
      this.threads.set(key, { key, messages: [], hasMore: false, loaded: false, loading: false });
    }
    return this.threads.get(key);
  }

  setCurrent(key) {
    if (this.current === key) return;
    this.current = key;
    this.emit("current", key);
  }

  find(threadKey, key) {
    const t = this.threads.get(threadKey);
    return t ? t.messages.find((m) => m.key === key) || null : null;
  }

  changed(threadKey, msg) {
    msg.rev = (msg.rev || 0) + 1;
    this.emit("message", { thread: threadKey, key: msg.key });
  }

  /** Replace (or, with `older`, prepend) a thread's messages from a `history` reply. */
  setHistory(convId, messages, hasMore, { older = false } = {}) {
    const t = this.thread(convId);
    const incoming = linkResults(messages.map(fromServer));
    if (older) {
      const have = new Set(t.messages.map((m) => m.key));
      t.messages = [...incoming.filter((m) => !have.has(m.key)), ...t.messages];
      t.hasMore = Boolean(hasMore);
    } else {
      const byKey = new Map(t.messages.map((m) => [m.key, m]));
      const seen = new Set();
      const next = incoming.map((m) => {
        seen.add(m.key);
        return preferred(byKey.get(m.key), m);
      });
      // Local rows (queued sends, tool results) and live answers the page does not list yet.
      for (const m of t.messages) if (!seen.has(m.key) && (m.local || m.live)) placeLocal(next, m);
      t.messages = next;
      if (!t.loaded || !t.olderLoaded) t.hasMore = Boolean(hasMore);
      for (const turn of this.turns.values()) {
        const msg = turn.conversation_id === convId && next.find((m) => m.key === turn.key);
        if (msg && !msg.live && msg.status !== "streaming") turn.status = "done";
      }
    }
    t.loaded = true;
    this.emit("thread", convId);
  }

  /** A message stored by another session of this user (`message` event). */
  upsertServerMessage(convId, message) {
    const t = this.thread(convId);
    const vm = fromServer(message);
    const i = t.messages.findIndex((m) => m.key === vm.key);
    if (i >= 0) t.messages[i] = preferred(t.messages[i], vm);
    else {
      const firstLocal = t.messages.findIndex((m) => m.local && m.role === "user");
      if (firstLocal >= 0) t.messages.splice(firstLocal, 0, vm);
      else t.messages.push(vm);
    }
    t.messages = linkResults(t.messages);
    this.emit("thread", convId);
  }

  addLocal(threadKey, msg) {
    const t = this.thread(threadKey);
    const i = t.messages.findIndex((m) => m.key === msg.key);
    if (i >= 0) t.messages[i] = { ...t.messages[i], ...msg, rev: (t.messages[i].rev || 0) + 1 };
    else t.messages.push(msg);
    this.emit("thread", threadKey);
    return msg;
  }

  removeMessage(threadKey, key) {
    const t = this.threads.get(threadKey);
    if (!t) return;
    t.messages = t.messages.filter((m) => m.key !== key);
    this.emit("thread", threadKey);
  }

  /** The first message of a new conversation was acknowledged: the draft becomes it. */
  promoteDraft(draftKey, convId) {
    const draft = this.threads.get(draftKey);
    if (!draft) return;
    const t = this.thread(convId);
    const have = new Set(t.messages.map((m) => m.key));
    t.messages.push(...draft.messages.filter((m) => !have.has(m.key)));
    for (const m of t.messages) m.conversation_id = convId;
    t.loaded = true;
    this.threads.delete(draftKey);
    for (const turn of this.turns.values()) if (turn.conversation_id === draftKey) turn.conversation_id = convId;
    if (this.current === draftKey) {
      this.current = convId;
      this.emit("current", convId);
    }
    this.emit("thread", convId);
  }

  ackUser(threadKey, clientMsgId, ack) {
    const msg = this.find(threadKey, "u:" + clientMsgId);
    if (!msg) return;
    Object.assign(msg, { id: ack.message_id, conversation_id: ack.conversation_id, status: "complete", local: false, turn_id: ack.turn_id });
    this.changed(threadKey, msg);
  }

  // ------------------------------------------------------------ live turns

  turnStarted(ev) {
    const t = this.thread(ev.conversation_id);
    const key = "m:" + ev.message_id;
    const msg = {
      key,
      id: ev.message_id,
      conversation_id: ev.conversation_id,
      role: "assistant",
      parts: [],
      status: "streaming",
      live: true,
      turn_id: ev.turn_id,
      model: ev.model,
      template: ev.template,
    };
    const i = t.messages.findIndex((m) => m.key === key);
    if (i >= 0 && ev.continued) {
      // An interrupted turn taken up again: the answer so far stays, the rest appends.
      Object.assign(t.messages[i], { status: "streaming", live: true, turn_id: ev.turn_id, model: ev.model });
    } else if (i >= 0) t.messages[i] = msg; // every delta from the start follows: begin afresh
    else {
      // Before queued user messages that are still waiting for their turn.
      const firstLocal = t.messages.findIndex((m) => m.local && m.role === "user");
      if (firstLocal >= 0) t.messages.splice(firstLocal, 0, msg);
      else t.messages.push(msg);
    }
    this.turns.set(ev.turn_id, { conversation_id: ev.conversation_id, key, status: "running" });
    this.emit("thread", ev.conversation_id);
  }

  /** Apply a turn event; returns false when the turn is unknown (caller re-syncs). */
  turnEvent(ev) {
    const turn = this.turns.get(ev.turn_id);
    if (!turn) return false;
    // The stored final version already replaced this answer: only its summary may still apply.
    if (turn.status === "done" && ev.type !== "turn.completed") return true;
    const msg = this.find(turn.conversation_id, turn.key);
    if (!msg) return false;
    switch (ev.type) {
      case "delta":
        appendText(msg.parts, ev.text || "");
        break;
      case "tool.call":
        msg.parts.push({
          kind: "tool",
          call_id: ev.call_id,
          name: ev.name,
          args: ev.args,
          needs_approval: Boolean(ev.needs_approval),
          state: ev.needs_approval ? "awaiting" : "running",
        });
        break;
      case "tool.output": {
        const part = msg.parts.find((p) => p.kind === "tool" && p.call_id === ev.call_id);
        const target = part || { kind: "tool", call_id: ev.call_id, name: "tool", args: {} };
        if (!part) msg.parts.push(target);
        // A call this page denied stays "denied", not "failed": the error only says why.
        const failed = target.decision === "deny" ? "denied" : "error";
        Object.assign(target, { state: ev.ok ? "ok" : failed, result: ev.result, error: ev.error });
        break;
      }
      case "turn.completed":
        Object.assign(msg, {
          status: ev.status,
          model: ev.model || msg.model,
          fallback_from: ev.fallback_from,
          error: ev.error,
          usage: ev.usage,
          stop_reason: ev.stop_reason,
        });
        for (const p of msg.parts) if (p.kind === "tool" && (p.state === "running" || p.state === "awaiting")) p.state = "stopped";
        turn.status = "done";
        break;
      default:
        return true;
    }
    this.changed(turn.conversation_id, msg);
    return true;
  }

  /** A tool step's approval was answered by this page. */
  setDecision(callId, decision) {
    for (const t of this.threads.values()) {
      for (const m of t.messages) {
        const part = (m.parts || []).find((p) => p.kind === "tool" && p.call_id === callId);
        if (part) {
          part.decision = decision;
          if (part.state === "awaiting") part.state = decision === "allow" ? "running" : "denied";
          this.changed(t.key, m);
          return;
        }
      }
    }
  }

  /** The running turn of a thread, if any: {turn_id, key}. */
  activeTurn(threadKey) {
    const t = this.threads.get(threadKey);
    if (!t) return null;
    for (let i = t.messages.length - 1; i >= 0; i--) {
      const m = t.messages[i];
      if (m.role === "assistant" && m.status === "streaming" && m.turn_id) return { turn_id: m.turn_id, key: m.key };
    }
    return null;
  }

  /** Streaming messages this page gets no events for (known only from history). */
  needsPoll(threadKey) {
    const t = this.threads.get(threadKey);
    return Boolean(t && t.messages.some((m) => m.status === "streaming" && !m.live));
  }

  /** Running turns, serialisable, to survive a reload together with last_seq. */
  liveTurns() {
    const out = [];
    for (const [turn_id, turn] of this.turns) {
      if (turn.status !== "running") continue;
      const msg = this.find(turn.conversation_id, turn.key);
      if (msg) out.push({ turn_id, conversation_id: turn.conversation_id, message: msg });
    }
    return out;
  }

  restoreTurns(list) {
    for (const { turn_id, conversation_id, message } of list || []) {
      const t = this.thread(conversation_id);
      t.messages.push({ ...message, live: true });
      this.turns.set(turn_id, { conversation_id, key: message.key, status: "running" });
    }
  }

  /** After a resume that failed, events of old turns will not come: stop treating them as live. */
  forgetLiveTurns() {
    for (const [id, turn] of this.turns) {
      if (turn.status !== "running") continue;
      const msg = this.find(turn.conversation_id, turn.key);
      if (msg) msg.live = false;
      this.turns.delete(id);
    }
  }

  /** The newest stored answer of a thread, for "regenerate": {id, key} or null. */
  lastAnswer(threadKey) {
    const t = this.threads.get(threadKey);
    if (!t) return null;
    for (let i = t.messages.length - 1; i >= 0; i--) {
      const m = t.messages[i];
      if (m.role === "assistant") return m.id ? { id: m.id, key: m.key } : null;
    }
    return null;
  }

  /** The last user message of a thread with text. */
  lastUserText(threadKey) {
    const t = this.threads.get(threadKey);
    if (!t) return null;
    for (let i = t.messages.length - 1; i >= 0; i--) {
      const m = t.messages[i];
      if (m.role === "user" && m.text) return m.text;
    }
    return null;
  }
}

// ------------------------------------------------------------ message views

function time(iso) {
  const t = Date.parse(iso || "");
  return Number.isNaN(t) ? 0 : t;
}

export function messageText(msg) {
  if (msg.role === "user") return msg.text || "";
  return (msg.parts || []).filter((p) => p.kind === "text").map((p) => p.text).join("");
}

/** A direct tool call's step goes back where it happened among the stored messages. */
function placeLocal(list, m) {
  const at = m.role === "local-tool" && m.at ? time(m.at) : 0;
  const i = at ? list.findIndex((x) => !x.local && time(x.created_at) > at) : -1;
  if (i >= 0) list.splice(i, 0, m);
  else list.push(m);
}

function appendText(parts, text) {
  if (!text) return;
  const last = parts[parts.length - 1];
  if (last && last.kind === "text") last.text += text;
  else parts.push({ kind: "text", text });
}

/** A server `Message` as a view: text and tool steps in the order they were written. */
export function fromServer(m) {
  const parts = [];
  const results = [];
  for (const block of Array.isArray(m.content) ? m.content : []) {
    if (!block || typeof block !== "object") continue;
    if (block.type === "text") appendText(parts, String(block.text || ""));
    else if (block.type === "tool_use") {
      parts.push({ kind: "tool", call_id: block.id, name: block.name, args: block.input, state: "ok" });
    } else if (block.type === "tool_result") {
      results.push({ call_id: block.tool_use_id, content: block.content, is_error: Boolean(block.is_error) });
    }
  }
  if (!parts.some((p) => p.kind === "text") && m.text && !results.length) appendText(parts, m.text);
  for (const call of Array.isArray(m.tool_calls) ? m.tool_calls : []) {
    const id = call.call_id || call.id;
    let part = parts.find((p) => p.kind === "tool" && p.call_id === id);
    if (!part) {
      part = { kind: "tool", call_id: id, name: call.name, args: call.args || call.input, state: "ok" };
      parts.push(part);
    }
    if ("ok" in call) part.state = call.ok ? "ok" : "error";
    if ("result" in call) part.result = call.result;
    if (call.error) part.error = call.error;
  }
  // A user message may hold only the results of tools the client ran (the OpenAI API):
  // show those, not an empty bubble.
  const ran = results.map((r) => `Tool result (${r.call_id}): ${typeof r.content === "string" ? r.content : JSON.stringify(r.content)}`);
  const text = m.role === "user" ? m.text || parts.filter((p) => p.kind === "text").map((p) => p.text).join("") || ran.join("\n") : undefined;
  return {
    key: m.client_msg_id ? "u:" + m.client_msg_id : "m:" + m.id,
    id: m.id,
    conversation_id: m.conversation_id,
    role: m.role,
    text,
    parts,
    results,
    status: m.status,
    model: m.model,
    created_at: m.created_at,
    client_msg_id: m.client_msg_id,
    turn_id: m.turn_id,
    usage: m.usage,
  };
}

/** Move tool results into the tool step that asked for them; drop rows that were only results. */
export function linkResults(list) {
  const steps = new Map();
  for (const m of list) for (const p of m.parts || []) if (p.kind === "tool" && p.call_id) steps.set(p.call_id, p);
  const out = [];
  for (const m of list) {
    const orphans = [];
    for (const r of m.results || []) {
      const step = steps.get(r.call_id);
      if (step) Object.assign(step, { state: r.is_error ? "error" : "ok", result: r.is_error ? undefined : decodeResult(r.content), error: r.is_error ? resultText(r.content) : undefined });
      else orphans.push(r);
    }
    m.results = [];
    for (const r of orphans) {
      m.parts.push({ kind: "tool", call_id: r.call_id, name: "tool result", args: undefined, state: r.is_error ? "error" : "ok", result: decodeResult(r.content) });
    }
    const visible = m.role === "user" ? Boolean(m.text) || orphans.length > 0 : (m.parts || []).length > 0 || m.status === "streaming" || m.local;
    if (visible || m.local || m.live) out.push(m);
  }
  return out;
}

function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((b) => (b && b.type === "text" ? b.text : JSON.stringify(b))).join("\n");
  return JSON.stringify(content);
}

function decodeResult(content) {
  const text = resultText(content);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Which of two views of the same message to keep. */
function preferred(existing, incoming) {
  if (!existing) return incoming;
  if (existing.live) {
    // Live views are exact; a final stored version wins over an unfinished live one.
    return existing.status === "streaming" && incoming.status !== "streaming" ? { ...incoming, rev: (existing.rev || 0) + 1 } : existing;
  }
  if (existing.status === "streaming" && incoming.status === "streaming") {
    // Both are prefixes of the same answer: keep the longer one.
    const a = messageText(existing);
    const b = messageText(incoming);
    if (a.length > b.length && a.startsWith(b)) return existing;
  }
  return { ...incoming, rev: (existing.rev || 0) + 1 };
}
