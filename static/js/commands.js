// `/name args` in the message box calls a tool directly (a `tool` frame) when `name` is one
// of welcome.tools. Arguments: JSON when they start with `{`; otherwise, for a tool with one
// required string parameter (or only one string parameter), the rest of the line is it.

/**
 * Returns null (not a command: send as a message), {name, args} or {name, error}.
 * A `/word` that names no tool is an error, never a message: a mistyped command must not
 * reach the model (nor become the chat's title).
 */
export function parseCommand(text, tools) {
  const m = String(text).trim().match(/^\/([\w.-]+)(?:\s+([\s\S]*))?$/);
  if (!m) return null;
  const tool = (tools || []).find((t) => t && t.name === m[1]);
  if (!tool) return { name: m[1], error: unknown(m[1], tools) };
  const rest = (m[2] || "").trim();
  if (!rest) return { name: tool.name, args: {} };
  if (rest.startsWith("{")) {
    try {
      const args = JSON.parse(rest);
      if (args && typeof args === "object" && !Array.isArray(args)) return { name: tool.name, args };
    } catch (err) {
      return { name: tool.name, error: `Arguments for /${tool.name} are not valid JSON: ${err.message}` };
    }
    return { name: tool.name, error: `Arguments for /${tool.name} must be a JSON object.` };
  }
  const param = textParameter(tool);
  if (param) return { name: tool.name, args: { [param]: rest } };
  return { name: tool.name, error: `/${tool.name} takes JSON arguments, e.g. /${tool.name} {"key": "value"}` };
}

function textParameter(tool) {
  const schema = tool.input_schema || tool.parameters || tool.schema || {};
  const props = schema.properties || {};
  const isString = (name) => props[name] && (props[name].type === "string" || (Array.isArray(props[name].type) && props[name].type.includes("string")));
  const required = Array.isArray(schema.required) ? schema.required : [];
  if (required.length === 1 && isString(required[0])) return required[0];
  if (!required.length) {
    const strings = Object.keys(props).filter(isString);
    if (strings.length === 1) return strings[0];
  }
  return null;
}

function unknown(name, tools) {
  const names = (tools || []).filter((t) => t && t.name).map((t) => "/" + t.name);
  if (!tools) return `/${name}: commands are available once connected.`;
  return `Unknown command /${name}.` + (names.length ? ` Commands: ${names.join(", ")}.` : " No commands are available.");
}
