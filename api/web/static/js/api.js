// The API: GraphQL over HTTP (fetch) and subscriptions over graphql-transport-ws.
// The token lives in this tab's sessionStorage only and travels in the Authorization
// header and the websocket's connection_init, never in a URL.
import { createClient } from "/app/vendor/graphql-ws-5.16.2/client.mjs";

const TOKEN_KEY = "mailsync.token";
let wsClient = null;
const reconnected = new Set();

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  if (wsClient) {
    wsClient.dispose();
    wsClient = null;
  }
}

export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export async function gql(query, variables = {}) {
  return post({ "content-type": "application/json" }, JSON.stringify({ query, variables }));
}

// A GraphQL multipart request (github.com/jaydenseric/graphql-multipart-request-spec):
// `files` maps a variable path such as "input.attachments.0" to a File.
export async function gqlWithFiles(query, variables, files) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables }));
  const paths = Object.keys(files);
  form.append("map", JSON.stringify(Object.fromEntries(paths.map((path, i) => [String(i), [`variables.${path}`]]))));
  paths.forEach((path, i) => form.append(String(i), files[path], files[path].name));
  return post({}, form);  // the browser sets multipart/form-data with its boundary
}

async function post(headers, payload) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: {
      ...headers,
      accept: "application/graphql-response+json, application/json",
      authorization: `Bearer ${token() || ""}`,
    },
    body: payload,
  });
  if (response.status === 413) throw new ApiError("The attachments are too large to send.", "TOO_LARGE");
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status}.`, "HTTP_" + response.status);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, (first.extensions || {}).code || "ERROR");
  }
  return body.data;
}

function client() {
  if (!wsClient) {
    const url = new URL("/graphql", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    wsClient = createClient({
      url: url.href,
      lazy: true,
      retryAttempts: 1000,
      shouldRetry: () => true,
      connectionParams: () => ({ authorization: `Bearer ${token() || ""}` }),
      // Events sent while the socket was down are lost: the views catch up on reconnect.
      on: { connected: (socket, payload, retrying) => { if (retrying) reconnected.forEach((fn) => fn()); } },
    });
  }
  return wsClient;
}

// Calls fn() each time the websocket is connected again after it was lost, until the
// returned function is called.
export function onReconnect(fn) {
  reconnected.add(fn);
  return () => reconnected.delete(fn);
}

// Calls onData(data) for each event until the returned function is called.
export function subscribe(query, variables, onData) {
  return client().subscribe(
    { query, variables },
    {
      next: (result) => result.data && onData(result.data),
      error: (error) => console.warn("subscription ended", error),
      complete: () => {},
    },
  );
}
