// Forms rendered from a trigger's (or an approval's) userInputs, with the API's 422
// messages ("body.inputs.<field>: ...") shown at their field.

import { h, replace } from "./dom.js";

function names(userInputs) {
  const properties = userInputs.properties || {};
  const order = (userInputs.order || []).filter((n) => n in properties);
  return [...order, ...Object.keys(properties).filter((n) => !order.includes(n))];
}

function control(id, name, prop) {
  const value = prop.default;
  if (prop.enum && prop.type !== "array") {
    return h("select", { id, name },
      h("option", { value: "" }, "—"),
      prop.enum.map((v) => h("option", { value: JSON.stringify(v), selected: v === value || null }, String(v))));
  }
  if (prop.type === "boolean") return h("input", { id, name, type: "checkbox", checked: value === true || null });
  if (prop.type === "number") return h("input", { id, name, type: "number", step: "any", value: value ?? "" });
  if (prop.type === "array" && prop.items && prop.items.enum) {
    return h("select", { id, name, multiple: true },
      prop.items.enum.map((v) => h("option", { value: JSON.stringify(v), selected: (value || []).includes(v) || null }, String(v))));
  }
  if (prop.type === "array" || prop.type === "object") {
    const shown = value === undefined || value === null ? "" : JSON.stringify(value, null, 1);
    return h("textarea", { id, name, rows: 3, placeholder: prop.type === "array" ? "one item per line, or a JSON array" : "a JSON object" }, shown);
  }
  return h("input", { id, name, type: "text", value: value ?? "" });
}

// The value a control holds, as the API expects it; undefined when left empty.
function read(el, prop) {
  if (prop.type === "boolean") return el.checked;
  if (el.multiple) return [...el.selectedOptions].map((o) => JSON.parse(o.value));
  if (el.tagName === "SELECT") return el.value === "" ? undefined : JSON.parse(el.value);
  const text = el.value.trim();
  if (text === "") return undefined;
  if (prop.type === "number") return Number(text);
  if (prop.type === "object") { try { return JSON.parse(text); } catch { return text; } }
  if (prop.type === "array") {
    if (text.startsWith("[")) { try { return JSON.parse(text); } catch { return text; } }
    const item = (prop.items && prop.items.type) || "string";
    return text.split(/\r?\n/).map((s) => s.trim()).filter(Boolean).map((s) => (item === "number" ? Number(s) : s));
  }
  return el.value;
}

// {element, values(), showErrors(message) → true when some went to a field, clear()}
export function inputsForm(userInputs, prefix) {
  const properties = userInputs.properties || {};
  const required = Array.isArray(userInputs.required) ? userInputs.required : [];
  const fields = {};
  const element = h("div", { class: "inputs" }, names(userInputs).map((name) => {
    const prop = properties[name];
    const id = `${prefix}-${name}`;
    const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
    const help = prop.description ? h("p", { class: "help", id: `${id}-help` }, prop.description) : null;
    const input = control(id, name, prop);
    input.setAttribute("aria-describedby", [help && `${id}-help`, `${id}-error`].filter(Boolean).join(" "));
    if (required.includes(name)) input.setAttribute("aria-required", "true");
    fields[name] = { input, error, prop };
    const label = h("label", { for: id }, prop.title || name, required.includes(name) ? h("span", { class: "required", title: "required" }, " *") : null);
    const wrapper = prop.type === "boolean" ? h("div", { class: "field checkbox" }, input, label, help, error) : h("div", { class: "field" }, label, input, help, error);
    wrapper.dataset.field = name;
    return wrapper;
  }));
  const values = () => {
    const out = {};
    for (const [name, { input, prop }] of Object.entries(fields)) {
      const value = read(input, prop);
      if (value !== undefined) out[name] = value;
    }
    return out;
  };
  const clear = () => {
    for (const { input, error } of Object.values(fields)) { error.textContent = ""; input.removeAttribute("aria-invalid"); }
  };
  const showErrors = (message) => {
    clear();
    let placed = false;
    for (const part of String(message).split(/;\s(?=[\w.\[\]-]+: )/)) {
      const found = part.match(/^(?:body\.)?inputs\.([^.:[\s]+)[^:]*:\s*(.*)$/);
      if (found && fields[found[1]]) {
        const { input, error } = fields[found[1]];
        error.textContent = error.textContent ? `${error.textContent}; ${found[2]}` : found[2];
        input.setAttribute("aria-invalid", "true");
        if (!placed) input.focus();
        placed = true;
      }
    }
    return placed;
  };
  return { element, values, showErrors, clear };
}

// A form message area: the API's message for what no field took.
export function formMessage(el, text) {
  replace(el, text ? h("span", {}, text) : null);
}
