// What the desk and the wallboard pages share: the REST client and the page's action log.
//
// The client sends the token only as a bearer header and turns an error answer into an
// Error("<slug>: <message>"); a 401 while a token is set calls `onUnauthorized` (the page
// forgets its token and asks again).
export function restClient(token, onUnauthorized) {
  return async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 401 && token()) onUnauthorized();
    if (!response.ok) throw new Error(`${data.error || response.status}: ${data.message || ""}`);
    return data;
  };
}

// The newest `keep` lines of a list element, newest first; `act` runs an action, notes its
// failure (and its success with `noteSuccess`) and answers null when it failed.
export function actionLog(list, keep, noteSuccess = false) {
  function note(text) {
    const li = document.createElement("li");
    li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    list.prepend(li);
    while (list.children.length > keep) list.lastChild.remove();
  }
  async function act(what, fn) {
    try {
      const done = await fn();
      if (noteSuccess) note(`${what}: ok`);
      return done;
    } catch (err) {
      note(`${what}: ${err.message}`);
      return null;
    }
  }
  return { note, act };
}
