// A small, safe Markdown renderer. It builds DOM nodes with createElement and text nodes
// only: model output never reaches innerHTML, so no markup in it can run. Links are made
// only for http:, https: and mailto: URLs; anything else stays visible as plain text.
//
// Supported: paragraphs (single newlines are line breaks), ATX and setext headings,
// emphasis, strong, strikethrough, inline code, fenced code blocks (with a copy button),
// ordered / unordered / task lists with nesting, blockquotes, horizontal rules, GFM tables,
// links, autolinks and bare URLs.
//
// `MarkdownView` re-renders streaming text cheaply: the text is split into top-level blocks
// and only the blocks that changed since the last update are rebuilt.

import { copyText } from "./dom.js";

const FENCE = /^( {0,3})(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const LIST_ITEM = /^([ \t]*)([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
const QUOTE = /^ {0,3}>/;
const TABLE_SEP = /^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const BLANK = /^[ \t]*$/;
const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

// ------------------------------------------------------------------ block splitting

const isListItem = (line) => LIST_ITEM.test(line) && !HR.test(line);
const isIndented = (line) => /^(?: {2,}|\t)[ \t]*\S/.test(line);
const startsBlock = (line) =>
  FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) || isListItem(line);

function closesFence(line, fence) {
  const m = line.match(/^ {0,3}(`{3,}|~{3,})[ \t]*$/);
  return Boolean(m && m[1][0] === fence[0] && m[1].length >= fence.length);
}

/** Split Markdown source into the source strings of its top-level blocks. */
export function splitBlocks(src) {
  const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let cur = null;
  const flush = () => {
    if (cur) blocks.push(cur.lines.join("\n"));
    cur = null;
  };
  const start = (type, line, extra = {}) => {
    flush();
    cur = { type, lines: [line], ...extra };
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (cur && cur.type === "code") {
      cur.lines.push(line);
      if (closesFence(line, cur.fence)) flush();
      continue;
    }
    if (BLANK.test(line)) {
      if (cur && cur.type === "list") {
        let j = i + 1;
        while (j < lines.length && BLANK.test(lines[j])) j++;
        if (j < lines.length && (isIndented(lines[j]) || isListItem(lines[j]))) {
          cur.lines.push(line);
          continue;
        }
      }
      flush();
      continue;
    }
    if (cur && cur.type === "list") {
      const prevBlank = BLANK.test(cur.lines[cur.lines.length - 1]);
      if (isIndented(line) || isListItem(line) || (!prevBlank && !startsBlock(line))) {
        cur.lines.push(line);
        continue;
      }
    }
    const fence = line.match(FENCE);
    if (fence) {
      start("code", line, { fence: fence[2] });
      continue;
    }
    if (cur && cur.type === "para" && cur.lines.length >= 1 && SETEXT.test(line)) {
      cur.lines.push(line);
      flush();
      continue;
    }
    if (HR.test(line) || HEADING.test(line)) {
      start("single", line);
      flush();
      continue;
    }
    if (QUOTE.test(line)) {
      if (cur && cur.type === "quote") cur.lines.push(line);
      else start("quote", line);
      continue;
    }
    if (isListItem(line)) {
      start("list", line);
      continue;
    }
    if (cur && cur.type === "quote") {
      cur.lines.push(line); // lazy continuation
      continue;
    }
    if (cur && cur.type === "para" && cur.lines.length === 1 && cur.lines[0].includes("|") && TABLE_SEP.test(line) && line.includes("-")) {
      cur.type = "table";
      cur.lines.push(line);
      continue;
    }
    if (cur && cur.type === "table") {
      if (line.includes("|")) {
        cur.lines.push(line);
        continue;
      }
      flush();
    }
    if (cur && cur.type === "para") cur.lines.push(line);
    else start("para", line);
  }
  flush();
  return blocks;
}

// ------------------------------------------------------------------ block rendering

/** Render Markdown to a DocumentFragment. */
export function renderMarkdown(src) {
  const frag = document.createDocumentFragment();
  for (const block of splitBlocks(src)) frag.append(...renderBlock(block));
  return frag;
}

/** Render one top-level block (as split by splitBlocks) to a list of nodes. */
export function renderBlock(src) {
  const lines = src.split("\n");
  const first = lines[0];
  const fence = first.match(FENCE);
  if (fence) return [codeBlock(lines, fence)];
  const heading = first.match(HEADING);
  if (heading && lines.length === 1) {
    const el = document.createElement(`h${heading[1].length}`);
    inline(heading[2] || "", el);
    return [el];
  }
  if (HR.test(first) && lines.length === 1) return [document.createElement("hr")];
  if (QUOTE.test(first)) {
    const el = document.createElement("blockquote");
    el.append(renderMarkdown(lines.map((l) => l.replace(/^ {0,3}> ?/, "")).join("\n")));
    return [el];
  }
  if (isListItem(first)) return [list(lines)];
  if (lines.length >= 2 && TABLE_SEP.test(lines[1]) && first.includes("|")) return [table(lines)];
  const last = lines[lines.length - 1];
  if (lines.length >= 2 && SETEXT.test(last)) {
    const el = document.createElement(last.trim()[0] === "=" ? "h1" : "h2");
    inline(lines.slice(0, -1).map((l) => l.trim()).join("\n"), el);
    return [el];
  }
  const p = document.createElement("p");
  inline(lines.map((l) => l.replace(/^[ \t]+/, "")).join("\n"), p);
  return [p];
}

function codeBlock(lines, fence) {
  const indent = fence[1].length;
  let body = lines.slice(1);
  if (body.length && closesFence(body[body.length - 1], fence[2])) body = body.slice(0, -1);
  const text = body.map((l) => l.replace(new RegExp(`^ {0,${indent}}`), "")).join("\n");
  const lang = (fence[3] || "").replace(/[^\w+#.-]/g, "").slice(0, 32);

  const wrap = document.createElement("div");
  wrap.className = "code-block";
  const head = document.createElement("div");
  head.className = "code-head";
  const label = document.createElement("span");
  label.className = "code-lang";
  label.textContent = lang || "code";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "code-copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", `Copy ${lang || "code"} to clipboard`);
  button.setAttribute("data-testid", "copy-code");
  button.addEventListener("click", async () => {
    const ok = await copyText(text);
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  head.append(label, button);
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  if (lang) code.className = `language-${lang}`;
  code.textContent = text;
  pre.append(code);
  wrap.append(head, pre);
  return wrap;
}

function list(lines) {
  const first = lines[0].match(LIST_ITEM);
  const ordered = /\d/.test(first[2]);
  const el = document.createElement(ordered ? "ol" : "ul");
  if (ordered) {
    const start = parseInt(first[2], 10);
    if (start !== 1) el.setAttribute("start", String(start));
  }
  const base = first[1].replace(/\t/g, "    ").length;
  const items = [];
  let cur = null;
  for (const line of lines) {
    const m = line.match(LIST_ITEM);
    const indent = m ? m[1].replace(/\t/g, "    ").length : 0;
    if (m && !HR.test(line) && indent <= base + 1) {
      const gap = m[3] ? Math.min(m[3].length, 4) : 1;
      cur = { indent: indent + m[2].length + gap, lines: [m[4] || ""] };
      items.push(cur);
    } else if (cur) {
      const expanded = line.replace(/^[ \t]*/, (ws) => ws.replace(/\t/g, "    "));
      const lead = expanded.match(/^ */)[0].length;
      cur.lines.push(expanded.slice(Math.min(lead, cur.indent)));
    }
  }
  for (const item of items) {
    while (item.lines.length > 1 && BLANK.test(item.lines[item.lines.length - 1])) item.lines.pop();
    const li = document.createElement("li");
    const task = item.lines[0].match(/^\[([ xX])\][ \t]+/);
    if (task) {
      item.lines[0] = item.lines[0].slice(task[0].length);
      const box = document.createElement("input");
      box.type = "checkbox";
      box.disabled = true;
      box.checked = task[1] !== " ";
      box.setAttribute("aria-label", box.checked ? "done" : "not done");
      li.className = "task";
      li.append(box, " ");
    }
    const loose = item.lines.some((l) => BLANK.test(l));
    const content = renderMarkdown(item.lines.join("\n"));
    if (!loose) {
      for (const child of [...content.childNodes]) {
        if (child.nodeName === "P") child.replaceWith(...child.childNodes);
      }
    }
    li.append(content);
    el.append(li);
  }
  return el;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const cells = [];
  let cell = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && s[i + 1] === "|") {
      cell += "|";
      i++;
    } else if (s[i] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else cell += s[i];
  }
  cells.push(cell.trim());
  return cells;
}

function table(lines) {
  const head = splitRow(lines[0]);
  const aligns = splitRow(lines[1]).map((c) =>
    c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : "",
  );
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const tbl = document.createElement("table");
  const thead = document.createElement("thead");
  const tr = document.createElement("tr");
  head.forEach((text, i) => tr.append(cell("th", text, aligns[i])));
  thead.append(tr);
  const tbody = document.createElement("tbody");
  for (const line of lines.slice(2)) {
    const row = document.createElement("tr");
    const cells = splitRow(line);
    head.forEach((_, i) => row.append(cell("td", cells[i] || "", aligns[i])));
    tbody.append(row);
  }
  tbl.append(thead, tbody);
  wrap.append(tbl);
  return wrap;
}

function cell(tag, text, align) {
  const el = document.createElement(tag);
  if (align) el.className = `align-${align}`;
  inline(text, el);
  return el;
}

// ------------------------------------------------------------------ inline

/** A safe href for a link, or null: only http:, https: and mailto: absolute URLs. */
export function safeHref(raw) {
  // Browsers ignore control characters and whitespace inside a scheme; so do we, first.
  const cleaned = String(raw).replace(/[\u0000-\u0020\u007f-\u009f]/g, "");
  const scheme = cleaned.match(/^([a-zA-Z][a-zA-Z0-9+.-]*):/);
  if (!scheme || !SAFE_SCHEMES.has(scheme[1].toLowerCase() + ":")) return null;
  try {
    const url = new URL(cleaned);
    return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function link(href, title) {
  const a = document.createElement("a");
  a.href = href;
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  if (title) a.title = title;
  return a;
}

const PUNCT = /[!-/:-@[-`{-~]/;
const isSpace = (c) => c === undefined || /\s/.test(c);
const isWord = (c) => c !== undefined && /[\p{L}\p{N}]/u.test(c);

function runLength(text, i) {
  let n = 0;
  while (text[i + n] === text[i]) n++;
  return n;
}

/** Find the closing delimiter run of exactly `n` chars `ch` after position `from`. */
function findClose(text, from, ch, n) {
  for (let j = from; j < text.length; j++) {
    if (text[j] === "\\") {
      j++;
      continue;
    }
    if (text[j] === "`") {
      const len = runLength(text, j);
      const end = text.indexOf("`".repeat(len), j + len);
      if (end > 0) j = end + len - 1;
      continue;
    }
    if (text[j] !== ch || text[j - 1] === ch) continue;
    const len = runLength(text, j);
    if (len === n && !isSpace(text[j - 1]) && !(ch === "_" && isWord(text[j + n]))) return j;
    j += len - 1;
  }
  return -1;
}

function matchBracket(text, i, open, close) {
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    if (text[j] === "\\") {
      j++;
      continue;
    }
    if (text[j] === open) depth++;
    else if (text[j] === close && --depth === 0) return j;
  }
  return -1;
}

/** Parse inline Markdown in `text` and append the nodes to `parent`. */
export function inline(text, parent) {
  let buf = "";
  const flushText = () => {
    if (buf) parent.append(document.createTextNode(buf));
    buf = "";
  };
  const push = (node) => {
    flushText();
    parent.append(node);
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && (PUNCT.test(text[i + 1]) || text[i + 1] === "\n")) {
      if (text[i + 1] === "\n") push(document.createElement("br"));
      else buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "\n") {
      buf = buf.replace(/[ \t]+$/, "");
      push(document.createElement("br"));
      i++;
      continue;
    }
    if (c === "`") {
      const n = runLength(text, i);
      const end = text.indexOf("`".repeat(n), i + n);
      if (end > 0 && text[end + n] !== "`") {
        let body = text.slice(i + n, end).replace(/\n/g, " ");
        if (/^ .*[^ ].* $/.test(body)) body = body.slice(1, -1);
        const code = document.createElement("code");
        code.textContent = body;
        push(code);
        i = end + n;
        continue;
      }
      buf += "`".repeat(n);
      i += n;
      continue;
    }
    if (c === "*" || c === "_" || c === "~") {
      const n = runLength(text, i);
      const opensOk = !isSpace(text[i + n]) && !(c === "_" && isWord(text[i - 1]));
      const want = c === "~" ? (n === 2 ? 2 : 0) : Math.min(n, 3);
      if (opensOk && want && n === want) {
        const end = findClose(text, i + n + 1, c, n);
        if (end > 0) {
          const inner = text.slice(i + n, end);
          let el;
          if (c === "~") el = document.createElement("del");
          else if (n === 1) el = document.createElement("em");
          else el = document.createElement("strong");
          if (n === 3) {
            const em = document.createElement("em");
            inline(inner, em);
            el.append(em);
          } else inline(inner, el);
          push(el);
          i = end + n;
          continue;
        }
      }
      buf += c.repeat(n);
      i += n;
      continue;
    }
    if (c === "[" || (c === "!" && text[i + 1] === "[")) {
      const start = c === "!" ? i + 1 : i;
      const close = matchBracket(text, start, "[", "]");
      if (close > 0 && text[close + 1] === "(") {
        const paren = matchBracket(text, close + 1, "(", ")");
        if (paren > 0) {
          const label = text.slice(start + 1, close);
          const target = text.slice(close + 2, paren).trim();
          const m = target.match(/^<?([^\s>]*)>?(?:\s+["'(](.*)["')])?$/s);
          const href = m ? safeHref(m[1]) : null;
          if (href) {
            const a = link(href, m[2]);
            if (c === "!") a.textContent = label ? `image: ${label}` : "image";
            else inline(label, a);
            push(a);
          } else {
            buf += text.slice(i, paren + 1); // unsafe or relative: shown as the text it is
          }
          i = paren + 1;
          continue;
        }
      }
      buf += c;
      i++;
      continue;
    }
    if (c === "<") {
      const m = text.slice(i).match(/^<([a-zA-Z][a-zA-Z0-9+.-]*:[^\s<>]*)>/);
      const href = m && safeHref(m[1]);
      if (href) {
        const a = link(href);
        a.textContent = m[1];
        push(a);
        i += m[0].length;
        continue;
      }
      buf += c;
      i++;
      continue;
    }
    if ((c === "h" || c === "H") && !isWord(text[i - 1])) {
      const m = text.slice(i).match(/^https?:\/\/[^\s<>"'`]+/i);
      if (m) {
        let url = m[0].replace(/[.,:;!?*_~]+$/, "");
        while (url.endsWith(")") && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) {
          url = url.slice(0, -1);
        }
        const href = safeHref(url);
        if (href) {
          const a = link(href);
          a.textContent = url;
          push(a);
          i += url.length;
          continue;
        }
      }
    }
    buf += c;
    i++;
  }
  flushText();
  return parent;
}

// ------------------------------------------------------------------ streaming view

/** Renders text into `el`, rebuilding only the blocks that changed since the last call. */
export class MarkdownView {
  constructor(el) {
    this.el = el;
    this.blocks = [];
    this.text = null;
  }

  update(text) {
    if (text === this.text) return;
    this.text = text;
    const sources = splitBlocks(text);
    let keep = 0;
    while (keep < sources.length && keep < this.blocks.length && this.blocks[keep].src === sources[keep]) keep++;
    for (const block of this.blocks.slice(keep)) for (const node of block.nodes) node.remove();
    this.blocks.length = keep;
    for (let i = keep; i < sources.length; i++) {
      const nodes = renderBlock(sources[i]);
      this.el.append(...nodes);
      this.blocks.push({ src: sources[i], nodes });
    }
  }
}
