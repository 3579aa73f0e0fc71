// A tool's result formatted for people: search hits as a table, a download as a link, a list
// of records as a table, a record as name / value rows; anything else as text. The same
// function renders a live `tool.output` and a result read back from stored history.

import { h, shortTime } from "../dom.js";
import { snippetNodes } from "./sidebar.js";

/** Nodes showing `value`, the (decoded) result of the tool `name`. */
export function renderResult(name, value) {
  if (isSearchHits(value)) return searchTable(value);
  if (isDownload(value)) return download(value);
  if (isRecords(value)) return recordsTable(value);
  if (isPlainObject(value)) return fieldsTable(value);
  return h("pre", { class: "tool-text" }, pretty(value));
}

export function pretty(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);

function isSearchHits(v) {
  return Array.isArray(v) && v.every((x) => isPlainObject(x) && typeof x.conversation_id === "string" && typeof x.snippet === "string");
}

function isDownload(v) {
  return isPlainObject(v) && typeof v.download_url === "string" && sameOriginPath(v.download_url);
}

function isRecords(v) {
  return Array.isArray(v) && v.length > 0 && v.every((x) => isPlainObject(x) && Object.values(x).every(isScalar));
}

/** Only a path on this server ("/api/…"), never another origin or a script URL. */
function sameOriginPath(url) {
  return url.startsWith("/") && !url.startsWith("//") && !url.startsWith("/\\");
}

function scroller(table) {
  return h("div", { class: "table-wrap result-table" }, table);
}

function searchTable(hits) {
  if (!hits.length) return h("p", { class: "tool-empty" }, "No matches.");
  const head = h("thead", {}, h("tr", {}, ["Conversation", "From", "When", "Match"].map((c) => h("th", { scope: "col" }, c))));
  const rows = hits.map((hit) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: "#" + encodeURIComponent(hit.conversation_id) }, hit.conversation_title || "Untitled")),
      h("td", {}, roleLabel(hit.role)),
      h("td", {}, h("time", { datetime: hit.created_at || "" }, shortTime(hit.created_at))),
      h("td", { class: "match" }, snippetNodes(hit.snippet)),
    ),
  );
  return scroller(h("table", {}, head, h("tbody", {}, rows)));
}

export function roleLabel(role) {
  return role === "user" ? "You" : role === "assistant" ? "Assistant" : role || "";
}

function download(result) {
  const name = result.filename || result.download_url.split("/").pop();
  const rest = Object.fromEntries(Object.entries(result).filter(([k]) => !["download_url", "content", "filename"].includes(k)));
  return h(
    "div",
    { class: "tool-download" },
    h("a", { class: "button subtle", href: result.download_url, download: result.filename || true, "data-testid": "tool-download" }, `Download ${name}`),
    Object.keys(rest).length ? fieldsTable(rest) : null,
  );
}

function recordsTable(records) {
  const columns = [...new Set(records.flatMap((r) => Object.keys(r)))];
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c))));
  const rows = records.map((r) => h("tr", {}, columns.map((c) => h("td", {}, cell(r[c])))));
  return scroller(h("table", {}, head, h("tbody", {}, rows)));
}

function fieldsTable(obj) {
  const rows = Object.entries(obj).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, isScalar(v) ? cell(v) : h("pre", {}, pretty(v)))));
  return scroller(h("table", { class: "fields" }, h("tbody", {}, rows)));
}

function cell(v) {
  return v === undefined || v === null ? "" : String(v);
}
