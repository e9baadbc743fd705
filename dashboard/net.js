// Talking to borg's HTTP API: JSON requests and server-sent event streams.
//
// When WEB_TOKEN is set, every request needs the token. EventSource cannot send headers, so
// the page takes the token from its own address (`/?token=…`) and passes it on every request
// as `?token=` (and as a Bearer header on fetches, which do allow headers). Hash routes keep
// the query string, so the token survives navigation.

const token = new URLSearchParams(window.location.search).get('token');

/** `path` with the page's token appended, when there is one. */
export function withToken(path) {
  if (!token) return path;
  const url = new URL(path, window.location.origin);
  url.searchParams.set('token', token);
  return url.pathname + url.search;
}

/** An error from the API, carrying the HTTP status. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function showAuthBanner(status) {
  const banner = document.getElementById('banner');
  if (!banner) return;
  banner.textContent = token
    ? `The API refused the token (HTTP ${status}). Check WEB_TOKEN and the ?token= of this page.`
    : `The API needs a token (HTTP ${status}): open this page as /?token=<WEB_TOKEN>.`;
  banner.hidden = false;
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(withToken(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, `borg is unreachable (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (response.status === 401 || response.status === 403) showAuthBanner(response.status);
  if (!response.ok) {
    const why = (data && (data.error || data.message)) || text || response.statusText;
    throw new ApiError(response.status, `${method} ${path}: ${why}`);
  }
  return data;
}

/** GET a JSON answer. */
export function getJson(path) {
  return request('GET', path);
}

/** POST a JSON body (or none) and read the JSON answer. */
export function postJson(path, body) {
  return request('POST', path, body === undefined ? {} : body);
}

/**
 * Opens an event stream. `handlers` maps event names to functions of the parsed data
 * (JSON when it parses, else the raw text); `message` catches unnamed events, `open` and
 * `error` are called on connection changes. Returns the EventSource (close it when done).
 */
export function openStream(path, handlers) {
  const source = new EventSource(withToken(path));
  for (const [name, handler] of Object.entries(handlers)) {
    if (name === 'open' || name === 'error') {
      source.addEventListener(name, (e) => handler(e, source));
      continue;
    }
    source.addEventListener(name, (e) => {
      let data = e.data;
      try {
        data = JSON.parse(e.data);
      } catch {
        // Plain text lines stay text.
      }
      handler(data, e);
    });
  }
  return source;
}

/** An actor path as one URL segment (it holds slashes). */
export function pathSegment(path) {
  return encodeURIComponent(path);
}
