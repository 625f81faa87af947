// HTTP and the live event stream. The token (when the server runs with --auth) comes from the
// page address (#token=...) or an earlier visit, and goes in the Authorization header: the
// event stream is read with fetch, not EventSource, so it can carry the header too.

const KEY = "warroom.token";

export function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.hash.replace(/&?token=[^&]+/, ""));
  }
  return localStorage.getItem(KEY);
}

export function setToken(t) {
  if (t) localStorage.setItem(KEY, t); else localStorage.removeItem(KEY);
}

export class HttpError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function check(res) {
  if (res.ok) return res;
  let detail = res.statusText;
  try {
    const body = await res.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (_) { /* not JSON */ }
  throw new HttpError(res.status, detail);
}

export async function getJSON(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const url = q.toString() ? `${path}?${q}` : path;
  return (await check(await fetch(url, { headers: headers() }))).json();
}

export async function getText(path) {
  return (await check(await fetch(path, { headers: headers() }))).text();
}

export async function postJSON(path) {
  return (await check(await fetch(path, { method: "POST", headers: headers() }))).json();
}

// Server-Sent Events over fetch: calls onEvent(kind, data, id) for every event, onState(true /
// false) as the stream opens and drops, and reconnects with Last-Event-ID after a pause.
export function subscribe(path, onEvent, onState) {
  let last = null;
  let stopped = false;
  const ctl = new AbortController();
  async function once() {
    const h = headers({ Accept: "text/event-stream" });
    if (last !== null) h["Last-Event-ID"] = String(last);
    const res = await check(await fetch(path, { headers: h, signal: ctl.signal }));
    onState(true);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let kind = "message", data = "", id = null;
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "event") kind = val;
          else if (field === "data") data += (data ? "\n" : "") + val;
          else if (field === "id") id = Number(val);
        }
        if (id !== null) last = id;
        if (data) onEvent(kind, JSON.parse(data), id);
      }
    }
  }
  (async () => {
    while (!stopped) {
      try { await once(); } catch (e) { if (stopped) return; }
      onState(false);
      await new Promise((r) => setTimeout(r, 3000));
    }
  })();
  return () => { stopped = true; ctl.abort(); };
}
