// The WebSocket to /ws: hello / welcome, resume, heartbeat, reconnect with jittered
// backoff obeying the close-code table of PROTOCOL.md, request / reply matching by `ref`,
// and exactly-once delivery of events by `seq`.

export const SUBPROTOCOL = "chinwag.v1";

// code -> [may reconnect, may resume]. Anything not listed (1005, 1006, ...) is a network
// failure: reconnect and try to resume; a resume that cannot be honoured costs nothing.
const CLOSE_RULES = {
  1000: [true, false],
  1001: [true, true],
  1012: [true, true],
  1009: [true, true],
  1011: [true, true],
  1013: [true, true],
  4002: [true, true],
  4003: [true, false],
  4004: [false, false],
  4008: [true, true],
  4009: [true, true],
  4011: [false, false],
};
const SLOW_DOWN = new Set([1013, 4008]); // back off first

export class ConnectionError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.code = code;
    Object.assign(this, extra);
  }
}

export function closeRule(code) {
  const [reconnect, resume] = CLOSE_RULES[code] || [true, true];
  return { reconnect, resume, slowDown: SLOW_DOWN.has(code) };
}

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)]. */
export function backoffDelay(attempt, { base = 500, cap = 15000, min = 0, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return Math.max(min, Math.round(random() * ceiling));
}

/**
 * new Connection({url, session, onWelcome, onEvent, onState, onFatal, onReply})
 * `session` is {session_id, resume_token, last_seq} from a previous page load, or null.
 * States: "connecting", "connected", "reconnecting", "offline".
 */
export class Connection {
  constructor({ url, session = null, client = { name: "chinwag-web", version: "1" }, onWelcome, onEvent, onState, onFatal, onReply }) {
    this.url = url;
    this.client = client;
    this.session = session && session.session_id ? { ...session } : null;
    this.lastSeq = this.session ? this.session.last_seq || 0 : 0;
    this.onWelcome = onWelcome || (() => {});
    this.onEvent = onEvent || (() => {});
    this.onState = onState || (() => {});
    this.onFatal = onFatal || (() => {});
    this.onReply = onReply || (() => {});
    this.ws = null;
    this.ready = false;
    this.epoch = 0; // increments on every welcome
    this.attempt = 0;
    this.pending = new Map(); // ref -> {resolve, reject, timer}
    this.waiters = []; // callbacks run when ready
    this.nextRef = 1;
    this.stopped = false;
    this.state = "connecting";
    this.heartbeatS = 20;
    this.timers = { retry: 0, ping: 0, idle: 0 };
    this.lastFrameAt = 0;
    this.canResume = true;
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", () => this.reconnectSoon(0));
    window.addEventListener("offline", () => this.setState("offline"));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.ws && !this.stopped) this.reconnectSoon(0);
    });
    this.open();
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  open() {
    clearTimeout(this.timers.retry);
    this.timers.retry = 0;
    if (this.stopped || this.ws) return;
    let ws;
    try {
      ws = new WebSocket(this.url, [SUBPROTOCOL]);
    } catch (err) {
      this.scheduleReconnect(1006);
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      const hello = { type: "hello", client: this.client };
      if (this.session && this.canResume) {
        hello.resume = {
          session_id: this.session.session_id,
          resume_token: this.session.resume_token,
          last_seq: this.lastSeq,
        };
      }
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (msg) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object") this.dispatch(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.dropSocket();
      this.handleClose(ev.code, ev.reason);
    };
    ws.onerror = () => {
      /* onclose follows and decides */
    };
  }

  dispatch(frame) {
    if (frame.type === "welcome") return this.welcome(frame);
    if (typeof frame.seq === "number" && frame.seq > 0) {
      if (frame.seq <= this.lastSeq) return; // already applied: never double
      const gap = frame.seq > this.lastSeq + 1;
      this.lastSeq = frame.seq;
      try {
        this.onEvent(frame, gap);
      } catch (err) {
        console.error("chinwag: event handler failed", frame.type, err);
      }
      if (frame.type === "reconnect") this.restart(true);
      return;
    }
    const ref = frame.ref;
    if (ref !== undefined && ref !== null && this.pending.has(ref)) {
      const p = this.pending.get(ref);
      this.pending.delete(ref);
      clearTimeout(p.timer);
      if (frame.type === "error") p.reject(new ConnectionError(frame.code, frame.message, { details: frame.details, retry_after: frame.retry_after }));
      else p.resolve(frame);
      return;
    }
    this.onReply(frame); // an unmatched reply (an error without ref, a stray pong)
  }

  welcome(frame) {
    const resumed = Boolean(frame.resumed);
    if (!resumed) this.lastSeq = Number(frame.last_seq) || 0;
    this.session = { session_id: frame.session_id, resume_token: frame.resume_token, last_seq: this.lastSeq };
    this.canResume = true;
    this.heartbeatS = Number(frame.heartbeat_s) > 0 ? Number(frame.heartbeat_s) : 20;
    this.ready = true;
    this.epoch += 1;
    this.goodSince = Date.now();
    this.startHeartbeat();
    this.setState("connected");
    this.onWelcome(frame, resumed);
    const waiters = this.waiters.splice(0);
    for (const run of waiters) run();
  }

  /** Send a frame and wait for its reply (rejects with ConnectionError on `error`). */
  request(frame, { timeoutMs = 30000 } = {}) {
    return new Promise((resolve, reject) => {
      const go = () => {
        const ref = `r${this.nextRef++}`;
        const timer = setTimeout(() => {
          if (this.pending.delete(ref)) reject(new ConnectionError("timeout", "no reply from the server"));
        }, timeoutMs);
        this.pending.set(ref, { resolve, reject, timer });
        try {
          this.ws.send(JSON.stringify({ ...frame, ref }));
        } catch {
          this.pending.delete(ref);
          clearTimeout(timer);
          reject(new ConnectionError("disconnected", "not connected"));
        }
      };
      if (this.ready) go();
      else this.waiters.push(go);
    });
  }

  /** Run `fn` once the connection is ready (now, if it is). */
  whenReady(fn) {
    if (this.ready) fn();
    else this.waiters.push(fn);
  }

  startHeartbeat() {
    clearInterval(this.timers.ping);
    clearInterval(this.timers.idle);
    const period = this.heartbeatS * 1000;
    this.timers.ping = setInterval(() => {
      if (this.ready) this.request({ type: "ping" }, { timeoutMs: period }).catch(() => {});
    }, period);
    // No frame (not even a pong) for two periods: the socket is dead even if the browser
    // has not noticed. Close it ourselves and reconnect with resume.
    this.timers.idle = setInterval(() => {
      if (this.ws && Date.now() - this.lastFrameAt > 2 * period + 5000) this.restart(true);
    }, 5000);
  }

  dropSocket() {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    clearInterval(this.timers.ping);
    clearInterval(this.timers.idle);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ConnectionError("disconnected", "connection lost"));
    }
    this.pending.clear();
    return ws;
  }

  /** Drop the current socket and connect again (resuming when `resume`). */
  restart(resume) {
    const ws = this.dropSocket();
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
    }
    this.canResume = resume;
    this.setState(this.downState());
    this.reconnectSoon(100 + Math.random() * 400);
  }

  handleClose(code, reason) {
    const rule = closeRule(code);
    if (!rule.reconnect) {
      this.stopped = true;
      this.setState("offline");
      this.onFatal(code, reason);
      return;
    }
    if (!rule.resume) this.canResume = false;
    this.scheduleReconnect(code);
  }

  scheduleReconnect(code) {
    // A connection that stayed up a while starts the backoff from scratch.
    if (this.goodSince && Date.now() - this.goodSince > 10000) this.attempt = 0;
    this.goodSince = 0;
    const min = SLOW_DOWN.has(code) ? 5000 : 0;
    const delay = backoffDelay(this.attempt, { min, base: 500, cap: 10000 });
    this.attempt = Math.min(this.attempt + 1, 10);
    this.setState(this.downState());
    this.reconnectSoon(Math.max(delay, this.attempt === 1 ? 150 : 0));
  }

  reconnectSoon(delay) {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => {
      this.timers.retry = 0;
      this.setState(this.attempt ? this.downState() : "connecting");
      this.open();
    }, delay);
  }

  /** Not connected: "offline" when the browser says so or many tries failed, else "reconnecting". */
  downState() {
    return navigator.onLine === false || this.attempt >= 6 ? "offline" : "reconnecting";
  }

  /** The state to persist so that a reload can resume. */
  snapshot() {
    return this.session ? { ...this.session, last_seq: this.lastSeq } : null;
  }
}
